"""inboxes: one case per customer and address (work_item_deliveries), delivery rounds, priority, notices, trigram search

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:30:00

Existing items keep working: each gets its case key (channel and address of its delivery), its
priority and a link to its delivery; open items of the same case are merged into the oldest (the
others closed as `merged`, their deliveries moved onto it) before the one-open-case index is built.
"""
from alembic import op
import sqlalchemy as sa
import console.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OPEN_CASE = "status IN ('open', 'claimed')"


def _case_key(channel, address):
    text = " ".join((address or "").split())
    return f"{channel}:{text.casefold() if channel == 'email' else text}"[:330]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('attempt_base', sa.Integer(), server_default='0', nullable=False))
    op.create_table('work_item_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('added_at', console.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_work_item_deliveries_bill_id_bills')),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_work_item_deliveries_delivery_id_deliveries')),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], name=op.f('fk_work_item_deliveries_work_item_id_work_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_item_deliveries')),
    sa.UniqueConstraint('work_item_id', 'delivery_id', name=op.f('uq_work_item_deliveries_work_item_id_delivery_id'))
    )
    op.create_index(op.f('ix_work_item_deliveries_delivery_id'), 'work_item_deliveries', ['delivery_id'], unique=False)
    with op.batch_alter_table('work_items') as batch:
        batch.drop_constraint('uq_work_items_delivery_id_reason', type_='unique')
        batch.add_column(sa.Column('case_key', sa.String(length=330), nullable=True))
        batch.add_column(sa.Column('priority', sa.Integer(), server_default='1', nullable=False))
        batch.add_column(sa.Column('notice', sa.String(length=24), nullable=True))
        batch.add_column(sa.Column('notice_at', console.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_work_items_delivery_id'), 'work_items', ['delivery_id'], unique=False)
    op.create_index('ix_work_items_urgent', 'work_items', ['status', 'assigned_role', 'priority', 'created_at'],
                    unique=False)

    # Existing items: case key, priority, their delivery as the case's first; duplicates merged.
    rows = bind.execute(sa.text(
        "SELECT w.id, w.customer_id, w.status, w.details, w.reason, w.delivery_id, w.bill_id, w.created_at, "
        "d.channel, d.address, c.key_account "
        "FROM work_items w JOIN deliveries d ON d.id = w.delivery_id JOIN customers c ON c.id = w.customer_id "
        "ORDER BY w.created_at, w.id"
    )).all()
    open_cases = {}
    for row in rows:
        key = _case_key(row.channel, row.address)
        details = row.details
        if isinstance(details, str):
            import json
            details = json.loads(details)
        low = isinstance(details, dict) and details.get("priority") == "low"
        priority = 2 if low else (0 if row.key_account else 1)
        target = row.id
        if row.status in ('open', 'claimed'):
            first = open_cases.setdefault((row.customer_id, key), row.id)
            if first != row.id:
                target = first
                bind.execute(sa.text("UPDATE work_items SET status = 'closed', close_reason = 'merged', "
                                     "closed_at = created_at WHERE id = :id"), {"id": row.id})
        bind.execute(sa.text("UPDATE work_items SET case_key = :key, priority = :priority WHERE id = :id"),
                     {"key": key, "priority": priority, "id": row.id})
        for item_id in {row.id, target}:
            bind.execute(sa.text(
                "INSERT INTO work_item_deliveries (work_item_id, delivery_id, bill_id, reason, added_at) "
                "VALUES (:item, :delivery, :bill, :reason, :at)"
            ), {"item": item_id, "delivery": row.delivery_id, "bill": row.bill_id, "reason": row.reason,
                "at": row.created_at})
    op.create_index('uq_work_items_open_case', 'work_items', ['customer_id', 'case_key'], unique=True,
                    postgresql_where=sa.text(OPEN_CASE), sqlite_where=sa.text(OPEN_CASE))

    if bind.dialect.name == 'postgresql':
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index('ix_customers_name_trgm', 'customers', ['name'], postgresql_using='gin',
                        postgresql_ops={'name': 'gin_trgm_ops'})
        op.create_index('ix_customers_postal_trgm', 'customers', ['postal_address'], postgresql_using='gin',
                        postgresql_ops={'postal_address': 'gin_trgm_ops'})
    else:
        op.create_index('ix_customers_name_trgm', 'customers', ['name'])
        op.create_index('ix_customers_postal_trgm', 'customers', ['postal_address'])


def downgrade() -> None:
    op.drop_index('ix_customers_postal_trgm', table_name='customers')
    op.drop_index('ix_customers_name_trgm', table_name='customers')
    op.drop_index('uq_work_items_open_case', table_name='work_items')
    op.drop_index('ix_work_items_urgent', table_name='work_items')
    op.drop_index(op.f('ix_work_items_delivery_id'), table_name='work_items')
    op.drop_index(op.f('ix_work_item_deliveries_delivery_id'), table_name='work_item_deliveries')
    op.drop_table('work_item_deliveries')
    op.execute("DELETE FROM work_items WHERE close_reason = 'merged'")
    with op.batch_alter_table('work_items') as batch:
        batch.drop_column('notice_at')
        batch.drop_column('notice')
        batch.drop_column('priority')
        batch.drop_column('case_key')
        batch.create_unique_constraint('uq_work_items_delivery_id_reason', ['delivery_id', 'reason'])
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('attempt_base')
