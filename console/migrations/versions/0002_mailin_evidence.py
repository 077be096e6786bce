"""mail-in: evidence of each report block, complaints, delivery events, e-mail channel review

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:20:00
"""
from alembic import op
import sqlalchemy as sa
import console.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OLD_CLASSES = "classification IN ('report', 'auto_reply', 'unmatched', 'malformed')"
NEW_CLASSES = "classification IN ('report', 'auto_reply', 'complaint', 'unmatched', 'malformed')"


def upgrade() -> None:
    op.create_table('delivery_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('inbound_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('occurred_at', console.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('auto_reply', 'complaint', 'reopened')", name=op.f('ck_delivery_events_kind')),
    sa.ForeignKeyConstraint(['attempt_id'], ['delivery_attempts.id'], name=op.f('fk_delivery_events_attempt_id_delivery_attempts')),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_events_delivery_id_deliveries')),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], name=op.f('fk_delivery_events_inbound_id_inbound_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_events'))
    )
    op.create_index(op.f('ix_delivery_events_delivery_id'), 'delivery_events', ['delivery_id'], unique=False)
    with op.batch_alter_table('customers') as batch:
        batch.add_column(sa.Column('email_review', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('email_review_at', console.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('inbound_report_recipients') as batch:
        batch.add_column(sa.Column('evidence', sa.String(length=12), nullable=True))
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_constraint(op.f('ck_inbound_messages_classification'), type_='check')
        batch.create_check_constraint(op.f('ck_inbound_messages_classification'), NEW_CLASSES)


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_constraint(op.f('ck_inbound_messages_classification'), type_='check')
        batch.create_check_constraint(op.f('ck_inbound_messages_classification'), OLD_CLASSES)
    with op.batch_alter_table('inbound_report_recipients') as batch:
        batch.drop_column('evidence')
    with op.batch_alter_table('customers') as batch:
        batch.drop_column('email_review_at')
        batch.drop_column('email_review')
    op.drop_index(op.f('ix_delivery_events_delivery_id'), table_name='delivery_events')
    op.drop_table('delivery_events')
