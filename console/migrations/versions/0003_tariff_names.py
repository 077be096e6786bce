"""billing: tariff names in both languages (the Chinese bill prints `name`, the English bill `name_en`)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The shipped SAMPLE tariffs, renamed in place: code -> (Chinese name, English name).
SAMPLE_NAMES = {
    "RES": ("居民生活阶梯电价（示例）", "SAMPLE residential, tiered per monthly bill"),
    "RES-TOU": ("居民峰谷分时电价（示例）", "SAMPLE residential time-of-use"),
    "COM": ("一般工商业分时电价（示例）", "SAMPLE commercial time-of-use"),
    "IND": ("大工业两部制电价（示例）", "SAMPLE large industrial, time-of-use plus demand charge"),
}


def upgrade() -> None:
    with op.batch_alter_table('tariffs') as batch:
        batch.add_column(sa.Column('name_en', sa.String(length=100), nullable=True))
    tariffs = sa.table('tariffs', sa.column('code', sa.String), sa.column('name', sa.String),
                       sa.column('name_en', sa.String), sa.column('sample', sa.Boolean))
    for code, (zh, en) in SAMPLE_NAMES.items():
        op.execute(tariffs.update().where(tariffs.c.code == code, tariffs.c.sample.is_(True))
                   .values(name=zh, name_en=en))


def downgrade() -> None:
    with op.batch_alter_table('tariffs') as batch:
        batch.drop_column('name_en')
