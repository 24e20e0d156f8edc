"""gateway: databases, connectors, portal key

Revision ID: 9b7f26d977a1
Revises: 9b02c686b40b
Create Date: 2026-12-01 20:01:57.500945

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9b7f26d977a1'
down_revision = '9b02c686b40b'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('gateway_connectors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['portal_id'], ['portals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('portal_id', 'kind')
    )
    with op.batch_alter_table('gateway_connectors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_connectors_portal_id'), ['portal_id'], unique=False)

    op.create_table('gateway_databases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('connection_encrypted', sa.Text(), nullable=False),
    sa.Column('schema_name', sa.String(length=255), nullable=True),
    sa.Column('tables', sa.JSON(), nullable=False),
    sa.Column('saved_queries', sa.JSON(), nullable=False),
    sa.Column('source_key', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('pending_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('connector_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['portal_id'], ['portals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_key')
    )
    with op.batch_alter_table('gateway_databases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_databases_portal_id'), ['portal_id'], unique=False)

    with op.batch_alter_table('portals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gateway_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lang', sa.String(length=8), nullable=False, server_default='en'))
        batch_op.add_column(sa.Column('date_format', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_portals_gateway_key', ['gateway_key'])



def downgrade():
    with op.batch_alter_table('portals', schema=None) as batch_op:
        batch_op.drop_constraint('uq_portals_gateway_key', type_='unique')
        batch_op.drop_column('date_format')
        batch_op.drop_column('lang')
        batch_op.drop_column('gateway_key')

    with op.batch_alter_table('gateway_databases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_databases_portal_id'))

    op.drop_table('gateway_databases')
    with op.batch_alter_table('gateway_connectors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_connectors_portal_id'))

    op.drop_table('gateway_connectors')
