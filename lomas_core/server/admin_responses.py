"""Response models of the admin API (``/v1/admin``), shown in the OpenAPI document.

The routes build these models, so what the document says is what they return; fields are closed
(``additionalProperties: false``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.models import ArchiveRecord, DatasetDescription, Grant, TokenInfo

__all__ = [
    "AdminDatasetList",
    "AdminEventPage",
    "AdminEventView",
    "AdminQueryPage",
    "AdminQueryRecord",
    "BudgetNumbers",
    "DatasetRemoved",
    "GrantCreated",
    "GrantList",
    "GrantRevoked",
    "GrantView",
    "IssuedToken",
    "PluginList",
    "PluginView",
    "TokenList",
    "TokenRevoked",
    "TokenView",
    "TokensRevoked",
    "UserList",
    "UserRemoved",
    "UserView",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetNumbers(_Closed):
    """An (epsilon, delta) budget as numbers."""

    epsilon: float
    delta: float


class PluginView(_Closed):
    kind: str = Field(examples=["engine"])
    name: str = Field(examples=["smartnoise_sql"])
    distribution: str | None
    version: str | None
    module: str | None
    enabled: bool
    loaded: bool


class PluginList(_Closed):
    plugins: list[PluginView]


class UserView(_Closed):
    name: str
    id: str | None = Field(default=None, description="immutable, never reused (usr_...)")
    is_admin: bool
    suspended: bool = False


class UserList(_Closed):
    users: list[UserView]


class UserRemoved(_Closed):
    deleted: str = Field(description="the user's name")
    id: str | None = Field(description="the removed identity (never reused)")


class IssuedToken(_Closed):
    token: str = Field(description="shown once, stored only as a hash")
    id: str
    expires_at: str | None


class TokenView(_Closed):
    """A token's id and times: never its value nor its hash."""

    id: str
    user: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None = Field(description="refreshed at most once a minute (configurable)")
    expired: bool

    @classmethod
    def of(cls, token: TokenInfo) -> TokenView:
        return cls.model_validate(token.view())


class TokenList(_Closed):
    tokens: list[TokenView]


class TokenRevoked(_Closed):
    revoked: int = Field(examples=[1])
    id: str = Field(description="the token revoked")


class TokensRevoked(_Closed):
    revoked: int = Field(description="how many tokens were revoked")


class AdminDatasetList(_Closed):
    datasets: list[DatasetDescription]


class DatasetRemoved(_Closed):
    deleted: str = Field(description="the dataset's name")
    id: str | None = Field(description="the removed dataset's id (a re-added name gets another)")


class GrantView(_Closed):
    user: str
    dataset: str
    id: str | None = Field(default=None, description="the grant's id (kept across revoke)")
    dataset_id: str | None = None
    initial: BudgetNumbers
    spent: BudgetNumbers
    remaining: BudgetNumbers

    @classmethod
    def of(cls, grant: Grant) -> GrantView:
        return cls(user=grant.user, dataset=grant.dataset, id=grant.id, dataset_id=grant.dataset_id,
                   initial=BudgetNumbers(**grant.initial.as_floats()),
                   spent=BudgetNumbers(**grant.spent.as_floats()),
                   remaining=BudgetNumbers(**grant.remaining.as_floats()))


class GrantCreated(GrantView):
    warnings: list[str] = Field(default_factory=list, description=(
        "what the admin should know, e.g. that delta 0 cannot run SmartNoise-SQL"))


class GrantList(_Closed):
    grants: list[GrantView]


class _GrantPair(_Closed):
    user: str
    dataset: str


class GrantRevoked(_Closed):
    deleted: _GrantPair
    id: str | None = Field(default=None, description="the grant's id (its spend is kept)")


class AdminQueryRecord(_Closed):
    """An archived query as admins see it: with the ids of its user and dataset."""

    id: str
    user: str
    user_id: str | None
    dataset: str
    dataset_id: str | None
    engine: str
    request: dict[str, Any]
    epsilon: float
    delta: float
    status: str = Field(examples=["success"])
    created_at: str
    completed_at: str | None
    result: Any = None
    error: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: ArchiveRecord) -> AdminQueryRecord:
        return cls(**record.public_view(), user_id=record.user_id, dataset_id=record.dataset_id)


class AdminQueryPage(_Closed):
    queries: list[AdminQueryRecord]
    next_cursor: str | None


class AdminEventView(_Closed):
    """One admin audit-log entry."""

    id: str
    at: str
    actor: str = Field(examples=["cli:root", "api:admin (usr_...)"])
    action: str = Field(examples=["grant.add"])
    target: str = Field(examples=["grant:eve/penguins"])
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AdminEventPage(_Closed):
    events: list[AdminEventView]
    next_cursor: str | None
