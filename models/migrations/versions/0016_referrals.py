"""Referral pathways and consent per purpose (issue 15): the service directory
(``partner_organisations``, ``partner_services``), ``consents`` and ``referrals``.

Revision ID: 0016_referrals
Revises: 0015_dtm
Create Date: 2026-12-02

New tables only (no change to existing ones): the same DDL on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016_referrals"
down_revision: str | None = "0015_dtm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "partner_organisations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(160), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=True),
        sa.Column("contact_phone", sa.String(32), nullable=True),
        sa.Column("referral_method", sa.String(16), nullable=False),
        sa.Column("shared_fields", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        *_timestamps(),
        sa.UniqueConstraint("name", name="uq_partner_organisations_name"),
    )
    op.create_table(
        "partner_services",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey(
                "partner_organisations.id",
                ondelete="CASCADE",
                name="fk_partner_services_organisation_id_partner_organisations",
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(160), nullable=False),
        sa.Column("category", sa.String(24), nullable=False),
        sa.Column("place_codes", sa.JSON(), nullable=False),
        sa.Column("hours", sa.String(160), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("focal_point", sa.String(160), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        *_timestamps(),
    )
    op.create_index("ix_partner_services_organisation_id", "partner_services", ["organisation_id"])
    op.create_index("ix_partner_services_category", "partner_services", ["category"])
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "contact_id",
            sa.Integer(),
            sa.ForeignKey(
                "contacts.id", ondelete="CASCADE", name="fk_consents_contact_id_contacts"
            ),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(24), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column(
            "recorded_by_user_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id", ondelete="SET NULL", name="fk_consents_recorded_by_user_id_users"
            ),
            nullable=True,
        ),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="SET NULL", name="fk_consents_ticket_id_tickets"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consents_contact_purpose", "consents", ["contact_id", "purpose", "id"])
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE", name="fk_referrals_ticket_id_tickets"),
            nullable=False,
        ),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey("partner_services.id", name="fk_referrals_service_id_partner_services"),
            nullable=False,
        ),
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey(
                "partner_organisations.id",
                name="fk_referrals_organisation_id_partner_organisations",
            ),
            nullable=False,
        ),
        sa.Column(
            "consent_id",
            sa.Integer(),
            sa.ForeignKey(
                "consents.id", ondelete="SET NULL", name="fk_referrals_consent_id_consents"
            ),
            nullable=True,
        ),
        sa.Column("shared", sa.Text(), nullable=True),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("psea", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("follow_up_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_by_user_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id", ondelete="SET NULL", name="fk_referrals_created_by_user_id_users"
            ),
            nullable=True,
        ),
        sa.Column("link_nonce", sa.String(32), nullable=False),
        sa.Column("link_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partner_note", sa.Text(), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_viewed_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_referrals_ticket_id", "referrals", ["ticket_id"])
    op.create_index("ix_referrals_service_id", "referrals", ["service_id"])
    op.create_index("ix_referrals_follow_up_due_at", "referrals", ["follow_up_due_at"])


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("consents")
    op.drop_table("partner_services")
    op.drop_table("partner_organisations")
