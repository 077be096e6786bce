"""used_confirmations: the one-time tokens of in-page confirmations, once their action was done

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00

An irreversible action (publish, dispatch, deactivate…) is confirmed in the page; its form carries
a signed one-time token (console/web/confirm.py). The token's nonce is recorded here in the
action's transaction, so a second identical submission is refused ("already done").
"""
from alembic import op
import sqlalchemy as sa
import console.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('used_confirmations',
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=300), nullable=False),
    sa.Column('used_at', console.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_used_confirmations_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_used_confirmations'))
    )
    op.create_index(op.f('ix_used_confirmations_used_at'), 'used_confirmations', ['used_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_used_confirmations_used_at'), table_name='used_confirmations')
    op.drop_table('used_confirmations')
