"""A Shopify Admin GraphQL API emulator, over real HTTP, for tests, benchmarks and the demo.

Written from Shopify's documentation and Shopify's own published schemas, not from what our client
does. Each behaviour names its evidence where it is modelled; in short:

* `POST /admin/api/{version}/graphql.json` only; a missing or wrong `X-Shopify-Access-Token` answers
  401 with Shopify's body. Versions: the shop serves `versions` (by default the stable versions
  supported on 2026-12-01); a request for an older, retired version is answered by the oldest
  supported one, and every answer names the version that served it in `X-Shopify-API-Version`
  (shopify.dev "About Shopify API versioning": no version or an unsupported one falls forward to the
  oldest supported stable version; Shopify staff on community.shopify.com t/164634). A version
  handle that was never a release answers 404 `{"errors":"Not Found"}`.
* Every document is validated against Shopify's real Admin schema of the served version
  (`shopify_schema.py`: the introspection Shopify ships in its npm package @shopify/dev-mcp) when
  that file is on the machine, then run against `shopify_admin.graphql`, a subset checked field by
  field against the real schema; errors come back as HTTP 200 `{"errors": [...]}` without data.
* Calculated query cost as shopify.dev "GraphQL Admin API rate limits" documents it: scalars and
  enums 0, objects 1, interfaces the most expensive implementation, connections 2 + first x one
  node, lists of objects `first` (or 1) x one item, a mutation field 10 plus what its payload
  selects; a 1000-point ceiling (`MAX_COST_EXCEEDED`) and a leaky bucket (maximumAvailable,
  restoreRate per second) refilled by the injected clock. A call is charged its requested cost and
  refunded down to its actual cost (what the response contained); a call that asks for more than is
  available is answered `THROTTLED` and nothing runs.
* `orders` and `productVariants` with Shopify search syntax, checked against the filters the real
  schema's `orders(query:)` description documents: an unknown filter or value is ignored and
  reported in `extensions.search` warnings (shopify.dev "Shopify API search syntax").
* Orders as the real `LineItem`/`RefundLineItem` descriptions define them: `quantity` includes
  refunded and removed units, `currentQuantity` excludes them; refunds restock (`restocked`,
  `restockType`) at a `location`; a cancellation with restock is a refund whose lines are
  `CANCEL` (RefundLineItemRestockType); an order edit that removes units is an `OrderEditAgreement`
  with `RETURN` sales. Orders older than 60 days are invisible without `read_all_orders`
  (shopify.dev Order object note).
* `inventorySetQuantities` with the per-version rules of the real schemas (ignoreCompareQuantity /
  compareQuantity up to 2026-01, changeFromQuantity from 2026-01 and mandatory from 2026-04, the
  `@idempotent(key:)` directive from 2026-01, required from 2026-04; a replay with the same key and
  input returns the first answer; a key whose first attempt failed answers
  IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED), and all-or-nothing userErrors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import (
    get_argument_values,
    get_directive_values,
    get_variable_values,
)
from graphql.utilities import get_operation_ast

from . import shopify_schema
from .faults import FaultPlan, fault_middleware

SDL_PATH = Path(__file__).with_name("shopify_admin.graphql")

MAX_QUERY_COST = 1000
MAX_PAGE_SIZE = 250
MAX_INPUT_SIZE = 250
MUTATION_COST = 10
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"

# The reasons inventorySetQuantities accepts (shopify.dev "inventory state reasons").
INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
QUANTITY_NAMES = (
    "available",
    "on_hand",
    "committed",
    "incoming",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
)
QUANTITY_LIMIT = 1_000_000_000

# graphql-core validation rules -> the codes graphql-ruby (Shopify's server) puts in extensions.code.
_RULE_CODES = {
    "FieldsOnCorrectTypeRule": "undefinedField",
    "KnownArgumentNamesRule": "argumentNotAccepted",
    "ProvidedRequiredArgumentsRule": "missingRequiredArguments",
    "ScalarLeafsRule": "selectionMismatch",
    "KnownTypeNamesRule": "undefinedType",
    "VariablesInAllowedPositionRule": "variableMismatch",
    "NoUndefinedVariablesRule": "variableNotDefined",
    "NoUnusedVariablesRule": "variableNotUsed",
    "ValuesOfCorrectTypeRule": "argumentLiteralsIncompatible",
    "KnownDirectivesRule": "undefinedDirective",
    "UniqueArgumentNamesRule": "argumentNotUnique",
    "KnownFragmentNamesRule": "undefinedFragment",
    "NoUnusedFragmentsRule": "useAndDefineFragment",
    "OverlappingFieldsCanBeMergedRule": "fieldConflict",
    "UniqueVariableNamesRule": "variableNotUnique",
    "VariablesAreInputTypesRule": "variableRequiresValidType",
    "LoneAnonymousOperationRule": "anonymousOperationNotAlone",
    "UniqueOperationNamesRule": "operationNotUnique",
    "NoFragmentCyclesRule": "infiniteLoop",
    "UniqueDirectivesPerLocationRule": "directiveNotUniqueForLocation",
    "ExecutableDefinitionsRule": "notExecutableDefinition",
}


def _version_key(version: str) -> str:
    return "9999-99" if version == "unstable" else version


_TAG = re.compile(r"#\s*(since|until):\s*(\d{4}-\d{2})\s*$")


def schema_sdl(version: str) -> str:
    """The SDL as API `version` has it: lines tagged `# since:`/`# until:` kept or dropped."""
    wanted = _version_key(version)
    kept: list[str] = []
    for line in SDL_PATH.read_text(encoding="utf-8").splitlines():
        match = _TAG.search(line)
        if match:
            kind, tagged = match.groups()
            if (kind == "since" and wanted < tagged) or (kind == "until" and wanted > tagged):
                continue
            line = line[: match.start()].rstrip()
        kept.append(line)
    return "\n".join(kept) + "\n"


def gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def gid_number(value: Any, kind: str) -> int | None:
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", str(value))
    return int(match.group(1)) if match else None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(message: str, code: str, nodes: Any = None, **extensions: Any) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(GraphQLError(message, nodes=nodes).formatted)
    formatted["extensions"] = {"code": code, **extensions}
    return formatted


# ---------------------------------------------------------------------------------------- model


@dataclass
class _Product:
    id: int
    title: str


@dataclass
class _Variant:
    id: int
    item_id: int
    product: _Product
    sku: str
    title: str
    price: Decimal
    tracked: bool
    stocked: bool
    available: int
    committed: int
    created_at: datetime
    updated_at: datetime

    @property
    def on_hand(self) -> int:
        return self.available + self.committed


@dataclass
class _Line:
    id: int
    variant: _Variant
    quantity: int  # LineItem.quantity: "including refunded and removed units" (real schema)
    price: Decimal
    discount: Decimal = Decimal("0")  # per unit, all discounts (line and order level) allocated
    refunded: int = 0  # taken off the order by refunds (a cancellation is one)
    removed: int = 0  # taken off the order by order edits

    @property
    def current_quantity(self) -> int:
        # LineItem.currentQuantity: "excluding refunded and removed units" (real schema)
        return self.quantity - self.refunded - self.removed


@dataclass
class _RefundLine:
    id: int
    line: _Line
    quantity: int
    restock_type: str  # RETURN, CANCEL or NO_RESTOCK (RefundLineItemRestockType)
    location: str | None = None  # RefundLineItem.location: "The inventory restock location"


@dataclass
class _Sale:
    id: int
    action: str  # SaleActionType: ORDER, RETURN ("A removal or return"), UPDATE
    line: _Line
    quantity: int


@dataclass
class _Agreement:
    id: int
    reason: str  # OrderActionType: ORDER, ORDER_EDIT, REFUND, RETURN
    happened_at: datetime
    sales: list[_Sale]


@dataclass
class _Refund:
    id: int
    created_at: datetime
    lines: list[_RefundLine]


@dataclass
class _Order:
    id: int
    number: int
    name: str
    email: str
    financial_status: str
    created_at: datetime
    updated_at: datetime
    lines: list[_Line]
    refunds: list[_Refund] = field(default_factory=list)
    agreements: list[_Agreement] = field(default_factory=list)
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


# ------------------------------------------------------------------------------ search syntax


def _search_groups(query: str | None) -> list[list[tuple[bool, str | None, str, str]]]:
    """`a:1 b:>2 OR -c:3` -> [[(neg, field, op, value), ...], ...]: OR of ANDs (AND binds tighter)."""
    if not query or not query.strip():
        return []
    tokens = re.findall(r"""(?:[^\s'"]+|'[^']*'|"[^"]*")+""", query)
    groups: list[list[tuple[bool, str | None, str, str]]] = [[]]
    negate_next = False
    for token in tokens:
        if token == "OR":
            groups.append([])
            continue
        if token == "AND":
            continue
        if token == "NOT":
            negate_next = True
            continue
        negate, negate_next = negate_next, False
        if token.startswith("-") and len(token) > 1:
            negate, token = True, token[1:]
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*):(>=|<=|>|<)?(.*)", token)
        if match:
            name, op, value = match.group(1).lower(), match.group(2) or "", match.group(3)
        else:
            name, op, value = None, "", token
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        groups[-1].append((negate, name, op, value))
    return [group for group in groups if group]


# The filters of `orders(query:)` and their acceptable values, as the real Admin schema (2026-01 to
# 2026-10) documents them in the description of that argument; None: any value. `status:any` is not
# one of them (that was the REST API's `status=any` parameter).
ORDER_FILTERS: dict[str, frozenset[str] | None] = {
    name: None
    for name in (
        "cart_token channel channel_id checkout_token confirmation_number created_at credit_card_last4 "
        "current_total_price customer_id discount_code email fraud_protection_level fulfillment_location_id "
        "gateway id location_id name payment_id payment_provider_id po_number processed_at "
        "reference_location_id return_status risk_level sales_channel sku source_identifier source_name "
        "subtotal_line_items_quantity tag tag_not test total_weight updated_at"
    ).split()
} | {
    "status": frozenset({"open", "closed", "cancelled", "not_closed"}),
    "financial_status": frozenset(
        {"paid", "pending", "authorized", "partially_paid", "partially_refunded", "refunded", "voided", "expired"}
    ),
    "fulfillment_status": frozenset(
        {"unshipped", "shipped", "fulfilled", "partial", "scheduled", "on_hold", "unfulfilled", "request_declined"}
    ),
    "chargeback_status": frozenset({"accepted", "charge_refunded", "lost", "needs_response", "under_review", "won"}),
    "delivery_method": frozenset({"shipping", "pick-up", "retail", "local", "pickup-point", "none"}),
}
TIME_FILTERS = frozenset({"created_at", "updated_at", "processed_at"})


def _parsed(groups: list[list[tuple[bool, str | None, str, str]]]) -> dict[str, Any]:
    """The `parsed` tree of extensions.search: {"field", "match_all"} leaves under "and"/"or"."""

    def leaf(term: tuple[bool, str | None, str, str]) -> dict[str, Any]:
        negate, name, op, value = term
        node: dict[str, Any] = {"field": name or "default", "match_all": value}
        if op:
            node = {"field": name or "default", "range_" + {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[op]: value}
        return {"not": node} if negate else node

    ands = [[leaf(term) for term in group] for group in groups]
    joined = [group[0] if len(group) == 1 else {"and": group} for group in ands]
    return joined[0] if len(joined) == 1 else {"or": joined}


def _parse_when(value: str) -> datetime | None:
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op == ">":
        return actual > wanted
    if op == ">=":
        return actual >= wanted
    if op == "<":
        return actual < wanted
    if op == "<=":
        return actual <= wanted
    return actual == wanted


def _text_match(actual: str | None, wanted: str) -> bool:
    """Shopify matches search values case-insensitively; a trailing * is a prefix search."""
    if actual is None:
        return False
    if wanted.endswith("*"):
        return actual.lower().startswith(wanted[:-1].lower())
    return actual.lower() == wanted.lower()


# ----------------------------------------------------------------------------- cost analysis


class _CostAnalysis:
    """Shopify's calculated query cost, plus the checks Shopify makes before running anything."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.errors: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ requested (static)

    def requested(self, operation: OperationDefinitionNode) -> int:
        root = self._root_type(operation)
        fields = collect_fields(self.schema, self.fragments, self.variables, root, operation.selection_set)
        if operation.operation == OperationType.MUTATION:
            total = 0
            for nodes in fields.values():
                name = nodes[0].name.value
                if name.startswith("__"):
                    continue
                total += MUTATION_COST + self._payload_cost(root.fields[name], nodes)
            return total
        return self._selection_cost(root, fields)

    def _payload_cost(self, definition: Any, nodes: list[FieldNode]) -> int:
        """A mutation field costs 10 (shopify.dev rate limits: "Mutation | 10"); what it selects on
        its payload object is priced like any selection (objects 1, scalars 0)."""
        self._check_inputs(definition, nodes[0])
        named = get_named_type(definition.type)
        if not isinstance(named, GraphQLObjectType):
            return 0
        return self._selection_cost(named, self._sub(named, nodes))

    def _root_type(self, operation: OperationDefinitionNode) -> GraphQLObjectType:
        root = self.schema.mutation_type if operation.operation == OperationType.MUTATION else self.schema.query_type
        assert root is not None
        return root

    def _selection_cost(self, parent: GraphQLObjectType, fields: dict[str, list[FieldNode]]) -> int:
        total = 0
        for nodes in fields.values():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue
            total += self._field_cost(parent.fields[name], nodes)
        return total

    def _field_cost(self, definition: Any, nodes: list[FieldNode]) -> int:
        args = self._check_inputs(definition, nodes[0])
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        if _is_connection(named):
            size = self._page_size(nodes[0], args)
            return 2 + size * self._node_cost(named, nodes)
        inner = self._object_cost(named, nodes)
        if is_list_type(get_nullable_type(definition.type)):
            first = args.get("first")
            return (first if isinstance(first, int) and first > 0 else 1) * inner
        return inner

    def _object_cost(self, named: Any, nodes: list[FieldNode]) -> int:
        """An object 1 plus its selection; an interface "Maximum of possible selections" (shopify.dev)."""
        if isinstance(named, GraphQLInterfaceType):
            return max((self._object_cost(kind, nodes) for kind in self.schema.get_possible_types(named)), default=1)
        assert isinstance(named, GraphQLObjectType)
        return 1 + self._selection_cost(named, self._sub(named, nodes))

    def _node_cost(self, connection: GraphQLObjectType, nodes: list[FieldNode]) -> int:
        """What one node of a connection costs, by the `nodes` or the `edges { node }` selection."""
        best = 0
        for sub_nodes in self._sub(connection, nodes).values():
            name = sub_nodes[0].name.value
            if name == "nodes":
                node_type = get_named_type(connection.fields["nodes"].type)
                best = max(best, self._object_cost(node_type, sub_nodes))
            elif name == "edges":
                edge_type = get_named_type(connection.fields["edges"].type)
                for edge_nodes in self._sub(edge_type, sub_nodes).values():
                    if edge_nodes[0].name.value == "node":
                        node_type = get_named_type(edge_type.fields["node"].type)
                        best = max(best, self._object_cost(node_type, edge_nodes))
        return best

    def _page_size(self, node: FieldNode, args: dict[str, Any]) -> int:
        first, last = args.get("first"), args.get("last")
        name = node.name.value
        if first is None and last is None:
            self.errors.append(_error("you must provide one of first or last", "BAD_REQUEST", [node]))
            return 0
        if first is not None and last is not None:
            self.errors.append(
                _error(
                    f"Passing both `first` and `last` to paginate the `{name}` connection is not supported.",
                    "BAD_REQUEST",
                    [node],
                )
            )
        for argument, value in (("first", first), ("last", last)):
            if value is None:
                continue
            if value > MAX_PAGE_SIZE:
                self.errors.append(
                    _error(
                        f"The connection field `{argument}` argument for `{name}` is {value}, which exceeds "
                        f"the maximum of {MAX_PAGE_SIZE}.",
                        "BAD_REQUEST",
                        [node],
                    )
                )
            elif value < 0:
                self.errors.append(_error(f"`{argument}` on `{name}` cannot be negative", "BAD_REQUEST", [node]))
        return max(0, min(int(first if first is not None else (last or 0)), MAX_PAGE_SIZE))

    def _check_inputs(self, definition: Any, node: FieldNode) -> dict[str, Any]:
        try:
            args = get_argument_values(definition, node, self.variables)
        except GraphQLError as exc:
            self.errors.append(_error(exc.message, "argumentLiteralsIncompatible", [node]))
            return {}
        for name, value in args.items():
            self._check_size(value, [node.name.value, name], node)
        return args

    def _check_size(self, value: Any, path: list[str], node: FieldNode) -> None:
        if isinstance(value, list):
            if len(value) > MAX_INPUT_SIZE:
                error = _error(
                    f"The input array size of {len(value)} is greater than the maximum allowed of {MAX_INPUT_SIZE}.",
                    "MAX_INPUT_SIZE_EXCEEDED",
                    [node],
                )
                error["path"] = path
                self.errors.append(error)
                return
            for index, item in enumerate(value):
                self._check_size(item, [*path, str(index)], node)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._check_size(item, [*path, key], node)

    def _sub(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        return collect_sub_fields(self.schema, self.fragments, self.variables, parent, nodes)

    # ------------------------------------------------------------------ actual (what came back)

    def actual(self, operation: OperationDefinitionNode, data: dict[str, Any] | None) -> int:
        root = self._root_type(operation)
        fields = collect_fields(self.schema, self.fragments, self.variables, root, operation.selection_set)
        if operation.operation == OperationType.MUTATION:
            total = 0
            for key, nodes in fields.items():
                name = nodes[0].name.value
                if name.startswith("__"):
                    continue
                payload = (data or {}).get(key)
                named = get_named_type(root.fields[name].type)
                if isinstance(named, GraphQLObjectType) and isinstance(payload, dict):
                    total += MUTATION_COST + self._actual_selection(named, self._sub(named, nodes), payload)
                else:
                    total += MUTATION_COST
            return total
        return self._actual_selection(root, fields, data)

    def _actual_selection(self, parent: GraphQLObjectType, fields: dict[str, list[FieldNode]], data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue
            total += self._actual_field(parent.fields[name], nodes, data.get(key))
        return total

    def _actual_object(self, named: Any, nodes: list[FieldNode], item: Any) -> int:
        if isinstance(named, GraphQLInterfaceType):
            typename = (item or {}).get("__typename") if isinstance(item, dict) else None
            possible = self.schema.get_possible_types(named)
            kinds = [kind for kind in possible if kind.name == typename] or list(possible)
            return max((self._actual_object(kind, nodes, item) for kind in kinds), default=1)
        return 1 + self._actual_selection(named, self._sub(named, nodes), item)

    def _actual_field(self, definition: Any, nodes: list[FieldNode], value: Any) -> int:
        named = get_named_type(definition.type)
        if is_leaf_type(named) or value is None:
            return 0
        if _is_connection(named):
            per_item: dict[int, int] = {}
            for key, sub_nodes in self._sub(named, nodes).items():
                name = sub_nodes[0].name.value
                items = value.get(key) or []
                if name == "nodes":
                    node_type = get_named_type(named.fields["nodes"].type)
                    for index, item in enumerate(items):
                        cost = self._actual_object(node_type, sub_nodes, item)
                        per_item[index] = max(per_item.get(index, 0), cost)
                elif name == "edges":
                    edge_type = get_named_type(named.fields["edges"].type)
                    for edge_key, edge_nodes in self._sub(edge_type, sub_nodes).items():
                        if edge_nodes[0].name.value != "node":
                            continue
                        node_type = get_named_type(edge_type.fields["node"].type)
                        for index, edge in enumerate(items):
                            cost = self._actual_object(node_type, edge_nodes, (edge or {}).get(edge_key))
                            per_item[index] = max(per_item.get(index, 0), cost)
            return 2 + sum(per_item.values())
        if isinstance(value, list):
            return sum(self._actual_object(named, nodes, item) for item in value)
        return self._actual_object(named, nodes, value)


def _is_connection(named: Any) -> bool:
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection") and "pageInfo" in named.fields


# ----------------------------------------------------------------------------------- emulator


Term = tuple[bool, str | None, str, str]  # (negated, field or None, operator, value)


def _matches(thing: Any, groups: list[list[Term]], term_holds: Callable[[Any, Term], bool]) -> bool:
    """Shopify's search syntax: groups joined by OR, terms in a group by AND; no query matches all."""
    return not groups or any(all(term_holds(thing, term) for term in group) for group in groups)


class ShopifyEmulator:
    """One shop with one location, its products, orders and the Admin GraphQL endpoint."""

    def __init__(
        self,
        *,
        access_token: str = "shpat_test",
        api_version: str = "2026-10",
        versions: tuple[str, ...] | None = None,
        read_all_orders: bool = True,
        bucket: float = 2000.0,
        restore_rate: float = 100.0,
        location_id: str = "gid://shopify/Location/1",
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        currency: str = "USD",
    ) -> None:
        self.access_token = access_token
        self.api_version = api_version  # the version tests address by default (`endpoint`)
        # The versions this shop serves: Shopify's supported stable versions, plus `api_version`
        # (a test may pin an older shop); older requests fall forward to the oldest of them.
        self.versions = tuple(sorted(set(versions or shopify_schema.SUPPORTED_VERSIONS) | {api_version}))
        self.read_all_orders = read_all_orders
        self.served: Counter[str] = Counter()  # requested version -> answers, by the version that served
        self.rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # fault: alter an answer body
        self._fail_mutations = 0
        self._serving = api_version
        self._search_warnings: list[dict[str, Any]] = []
        self.maximum_available = float(bucket)
        self.restore_rate = float(restore_rate)
        self.location_id = location_id
        self.currency = currency
        self._clock = clock
        self._now = now or (lambda: datetime.now(UTC))
        self.faults = FaultPlan()
        self.operations: Counter[str] = Counter()
        self.throttled = 0
        self.replays = 0  # idempotent replays answered from the stored first answer
        self.requested_costs: list[int] = []  # requestedQueryCost of every call that ran
        self.actual_costs: list[int] = []  # actualQueryCost of every call that ran (what it was charged)
        self._lose_answers = 0
        self._available = float(bucket)
        self._stamp = clock()
        self._ids = itertools.count(1001)
        self._order_numbers = itertools.count(1001)
        self._products: list[_Product] = []
        self._variants: dict[int, _Variant] = {}
        self._by_sku: dict[str, _Variant] = {}
        self._by_item: dict[int, _Variant] = {}
        self._orders: dict[int, _Order] = {}
        self._idempotency: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self._location_number = gid_number(location_id, "Location") or 1
        self._schemas: dict[str, GraphQLSchema] = {}
        self.real_schema_checks = 0  # documents validated against Shopify's real schema
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    @property
    def counters(self) -> Counter[str]:
        return self.faults.counters

    @property
    def schema(self) -> GraphQLSchema:
        """The executable schema (subset) of the version being served."""
        return self._schema_for(self._serving)

    def _schema_for(self, version: str) -> GraphQLSchema:
        if version not in self._schemas:
            self._schemas[version] = build_schema(schema_sdl(version))
            self._install_resolvers(self._schemas[version])
        return self._schemas[version]

    def serve_version(self, requested: str) -> str | None:
        """The version that answers a request for `requested`; None: 404.

        shopify.dev "About Shopify API versioning": a request for an unsupported (retired) version is
        served by the oldest supported stable version; Shopify staff confirm it on
        community.shopify.com t/164634. Handles are YYYY-01/04/07/10 or `unstable`.
        """
        if requested in self.versions:
            return requested
        if re.fullmatch(r"\d{4}-(01|04|07|10)", requested):
            stable = [version for version in self.versions if version != "unstable"]
            if stable and requested < stable[0]:
                return stable[0]
        return None

    def fail_mutations(self, times: int = 1) -> None:
        """The next `times` keyed mutations fail inside Shopify after their key was taken, and the
        answer is HTTP 503: a retry with the same key then gets IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED
        ("A previous request with this idempotency key failed. Retry with a new idempotency key.",
        InventorySetQuantitiesUserErrorCode in the real 2026-01+ schemas)."""
        self._fail_mutations += times

    @property
    def endpoint(self) -> str:
        return f"/admin/api/{self.api_version}/graphql.json"

    @property
    def route(self) -> str:
        return f"POST {self.endpoint}"

    def lose_answers(self, times: int = 1) -> None:
        """The next `times` GraphQL requests are carried out, then the connection drops unanswered:
        the case where a retry must not apply a write twice (the fault plan's `drop` drops before)."""
        self._lose_answers += times

    # ------------------------------------------------------------------ shop state, as a merchant sees it

    def _stamp_now(self) -> datetime:
        return self._now().astimezone(UTC).replace(microsecond=0)

    def add_product(
        self,
        title: str,
        variants: dict[str, int],
        *,
        tracked: bool = True,
        price: Decimal | str = "10.00",
        stocked: bool = True,
    ) -> dict[str, str]:
        """A product with one variant per SKU (starting `available`); returns sku -> InventoryItem gid."""
        product = _Product(next(self._ids), title)
        self._products.append(product)
        created: dict[str, str] = {}
        for sku, quantity in variants.items():
            if sku in self._by_sku:
                raise ValueError(f"SKU {sku!r} already exists in this emulated shop")
            moment = self._stamp_now()
            variant = _Variant(
                id=next(self._ids),
                item_id=next(self._ids),
                product=product,
                sku=sku,
                title=sku if len(variants) > 1 else "Default Title",
                price=Decimal(str(price)),
                tracked=tracked,
                stocked=stocked,
                available=int(quantity),
                committed=0,
                created_at=moment,
                updated_at=moment,
            )
            self._variants[variant.id] = variant
            self._by_sku[sku] = variant
            self._by_item[variant.item_id] = variant
            created[sku] = gid("InventoryItem", variant.item_id)
        return created

    def available(self, sku: str) -> int:
        return self._by_sku[sku].available

    def committed(self, sku: str) -> int:
        return self._by_sku[sku].committed

    def on_hand(self, sku: str) -> int:
        return self._by_sku[sku].on_hand

    def set_available(self, sku: str, quantity: int) -> None:
        """An edit by hand in the Shopify admin."""
        variant = self._by_sku[sku]
        variant.available = int(quantity)
        variant.updated_at = self._stamp_now()

    def place_order(
        self,
        lines: list[tuple[str, int]] | list[tuple[str, int, str]],
        *,
        financial_status: str = "PAID",
        name: str | None = None,
        email: str = "customer@example.com",
        created_at: datetime | None = None,
    ) -> str:
        """An order from the online store; its quantities move from available to committed.
        A line may carry a third item: the discount per unit (all discounts allocated to it)."""
        moment = (created_at or self._stamp_now()).astimezone(UTC)
        number = next(self._order_numbers)
        order_lines = []
        for sku, quantity, *rest in lines:
            variant = self._by_sku[sku]
            if variant.tracked:
                variant.available -= quantity
                variant.committed += quantity
            discount = Decimal(str(rest[0])) if rest else Decimal("0")
            order_lines.append(_Line(next(self._ids), variant, int(quantity), variant.price, discount))
        order = _Order(
            id=next(self._ids),
            number=number,
            name=name or f"#{number}",
            email=email,
            financial_status=financial_status,
            created_at=moment,
            updated_at=moment,
            lines=order_lines,
        )
        sales = [_Sale(next(self._ids), "ORDER", line, line.quantity) for line in order_lines]
        order.agreements.append(_Agreement(next(self._ids), "ORDER", moment, sales))
        self._orders[order.id] = order
        return gid("Order", order.id)

    def _order(self, order_id: str) -> _Order:
        number = gid_number(order_id, "Order")
        if number is None or number not in self._orders:
            raise KeyError(order_id)
        return self._orders[number]

    def cancel_order(self, order_id: str, *, restock: bool = True) -> str | None:
        """orderCancel: what is still on the order comes off it as a refund whose lines are `CANCEL`
        ("Use this when restocking unfulfilled line items", RefundLineItemRestockType) restocked at
        our location, or NO_RESTOCK when `restock` is false (orderCancel(restock: Boolean!)).
        Returns the refund's gid (None when nothing was left on the order)."""
        order = self._order(order_id)
        if order.cancelled_at is not None:
            return None
        moment = self._stamp_now()
        refund_lines = []
        for line in order.lines:
            remaining = line.current_quantity
            if remaining <= 0:
                continue
            if line.variant.tracked:
                line.variant.committed -= min(line.variant.committed, remaining)
                if restock:
                    line.variant.available += remaining
            line.refunded += remaining
            kind, location = ("CANCEL", self.location_id) if restock else ("NO_RESTOCK", None)
            refund_lines.append(_RefundLine(next(self._ids), line, remaining, kind, location))
        refund_id = None
        if refund_lines:
            refund = _Refund(next(self._ids), moment, refund_lines)
            order.refunds.append(refund)
            refund_id = gid("Refund", refund.id)
        order.cancelled_at = moment
        order.cancel_reason = "CUSTOMER"
        if order.financial_status in ("PENDING", "AUTHORIZED"):
            order.financial_status = "VOIDED"
        order.updated_at = moment
        return refund_id

    def edit_order(self, order_id: str, quantities: dict[str, int], *, restock: bool = True) -> str:
        """An order edit that lowers line quantities (orderEditSetQuantity, committed): the units
        leave `currentQuantity` but stay in `quantity`, and the edit is an OrderEditAgreement whose
        ProductSales are RETURN ("A removal or return", SaleActionType). No refund is created."""
        order = self._order(order_id)
        moment = self._stamp_now()
        sales = []
        for sku, wanted in quantities.items():
            line = next(line for line in order.lines if line.variant.sku == sku)
            removed = line.current_quantity - int(wanted)
            if removed <= 0:
                raise ValueError(f"an edit to {wanted} does not remove units of {sku}")
            line.removed += removed
            if line.variant.tracked:
                line.variant.committed -= min(line.variant.committed, removed)
                if restock:
                    line.variant.available += removed
            sales.append(_Sale(next(self._ids), "RETURN", line, removed))
        agreement = _Agreement(next(self._ids), "ORDER_EDIT", moment, sales)
        order.agreements.append(agreement)
        order.updated_at = moment
        return gid("OrderEditAgreement", agreement.id)

    def refund(
        self, order_id: str, lines: list[tuple[str, int]], *, restock: bool = True, location: str | None = None
    ) -> str:
        """A refund; restockType RETURN puts the units back at `location` (ours by default: only
        then does our available change), NO_RESTOCK puts nothing back."""
        order = self._order(order_id)
        where = location or self.location_id
        moment = self._stamp_now()
        refund_lines = []
        for sku, quantity in lines:
            line = next((line for line in order.lines if line.variant.sku == sku), None)
            if line is None:
                raise KeyError(f"order {order.name} has no line for {sku}")
            if quantity > line.current_quantity:
                raise ValueError(f"cannot refund {quantity} of {sku}: {line.current_quantity} left on {order.name}")
            line.refunded += quantity
            variant = line.variant
            if variant.tracked:
                variant.committed -= min(variant.committed, quantity)
                if restock and where == self.location_id:
                    variant.available += quantity
            refund_lines.append(
                _RefundLine(
                    next(self._ids),
                    line,
                    int(quantity),
                    "RETURN" if restock else "NO_RESTOCK",
                    where if restock else None,
                )
            )
        refund = _Refund(next(self._ids), moment, refund_lines)
        order.refunds.append(refund)
        fully = all(line.current_quantity == 0 for line in order.lines)
        order.financial_status = "REFUNDED" if fully else "PARTIALLY_REFUNDED"
        order.updated_at = moment
        return gid("Refund", refund.id)

    # ------------------------------------------------------------------ bucket

    def _refill(self) -> None:
        moment = self._clock()
        elapsed = max(0.0, moment - self._stamp)
        self._available = min(self.maximum_available, self._available + elapsed * self.restore_rate)
        self._stamp = moment

    def throttle_status(self) -> dict[str, Any]:
        self._refill()
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": int(math.floor(self._available + 1e-9)),
            "restoreRate": self.restore_rate,
        }

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self.throttle_status(),
            }
        }

    # ------------------------------------------------------------------ GraphQL

    def execute_document(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """What the endpoint answers (the JSON body), without HTTP; every rule of the endpoint applies."""
        self._serving = version or self.api_version
        self._search_warnings = []
        try:
            document = parse(query)
        except GraphQLError as exc:
            return {"errors": [_error(exc.message, "syntaxError", None) | {"locations": _locations(exc)}]}
        if shopify_schema.available(self._serving):
            real = shopify_schema.real_schema(self._serving)
            self.real_schema_checks += 1
            if validate(real, document):
                return {"errors": self._validation_errors(document, real)}
            if validate(self.schema, document):
                # Valid on Shopify, but asks for something this emulator does not model: say so
                # rather than pretend Shopify refused it.
                missing = "; ".join(problem.message for problem in validate(self.schema, document)[:3])
                return {"errors": [_error(f"Not modelled by the Shopify emulator: {missing}", "EMULATOR_UNMODELLED")]}
        elif validate(self.schema, document):
            return {"errors": self._validation_errors(document, self.schema)}
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = f'No operation named "{operation_name}"' if operation_name else "An operation name is required"
            return {"errors": [_error(message, "operationNotFound")]}
        coerced = get_variable_values(self.schema, operation.variable_definitions or [], variables or {})
        if isinstance(coerced, list):
            return {"errors": [_error(exc.message, "INVALID_VARIABLE", exc.nodes) for exc in coerced]}
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        analysis = _CostAnalysis(self.schema, fragments, coerced)
        requested = analysis.requested(operation)
        if analysis.errors:
            return {"errors": analysis.errors}
        if requested > MAX_QUERY_COST:
            message = (
                f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n"
                f"See {RATE_LIMITS_DOC} for more information on how the\ncost of a query is calculated.\n\n"
                "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
                "See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"
            )
            error = _error(message, "MAX_COST_EXCEEDED", None, cost=requested, maxCost=MAX_QUERY_COST)
            return {"errors": [error], "extensions": self._cost(requested, None)}
        self._refill()
        if requested > self._available + 1e-9:
            self.throttled += 1
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}
            return {"errors": [error], "extensions": self._cost(requested, None)}
        self._available -= requested
        self.requested_costs.append(requested)
        root = self.schema.mutation_type if operation.operation == OperationType.MUTATION else self.schema.query_type
        assert root is not None
        for nodes in collect_fields(self.schema, fragments, coerced, root, operation.selection_set).values():
            if not nodes[0].name.value.startswith("__"):
                self.operations[f"{operation.operation.value}:{nodes[0].name.value}"] += 1
        result = execute(self.schema, document, variable_values=variables or {}, operation_name=operation_name)
        assert not hasattr(result, "__await__")
        for failure in result.errors or []:  # type: ignore[union-attr]
            if isinstance(failure.original_error, _MutationFailed):
                raise _MutationFailed()
        actual = min(requested, analysis.actual(operation, result.data))  # type: ignore[union-attr]
        self.actual_costs.append(actual)
        self._available = min(self.maximum_available, self._available + (requested - actual))
        body: dict[str, Any] = {}
        if result.errors:  # type: ignore[union-attr]
            body["errors"] = [error.formatted for error in result.errors]  # type: ignore[union-attr]
        body["data"] = result.data  # type: ignore[union-attr]
        body["extensions"] = self._cost(requested, actual)
        if self._search_warnings:
            # shopify.dev "Shopify API search syntax": a search Shopify cannot fully read still runs,
            # without the terms it could not use, and the answer says so in extensions.search.
            body["extensions"]["search"] = self._search_warnings
        return body

    def _validation_errors(self, document: Any, schema: GraphQLSchema) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in specified_rules:
            for exc in validate(schema, document, [rule]):
                code = _RULE_CODES.get(rule.__name__, "validationError")
                extensions: dict[str, Any] = {}
                message = exc.message
                match = re.match(r"Cannot query field '([^']+)' on type '([^']+)'\.", message)
                if code == "undefinedField" and match:
                    message = f"Field '{match.group(1)}' doesn't exist on type '{match.group(2)}'"
                    extensions = {"typeName": match.group(2), "fieldName": match.group(1)}
                out.append(_error(message, code, exc.nodes, **extensions))
        return out

    # ------------------------------------------------------------------ resolvers and views

    def _install_resolvers(self, schema: GraphQLSchema) -> None:
        query = schema.query_type
        mutation = schema.mutation_type
        assert query is not None and mutation is not None
        query.fields["orders"].resolve = self._resolve_orders
        query.fields["order"].resolve = self._resolve_order
        query.fields["productVariants"].resolve = self._resolve_variants
        query.fields["location"].resolve = self._resolve_location
        query.fields["currentAppInstallation"].resolve = self._resolve_installation
        mutation.fields["inventorySetQuantities"].resolve = self._resolve_set_quantities

    def _money(self, amount: Decimal) -> dict[str, Any]:
        money = {"amount": str(amount), "currencyCode": self.currency}
        return {"shopMoney": money, "presentmentMoney": money}

    def _location_view(self, location_id: str | None = None) -> dict[str, Any]:
        location_id = location_id or self.location_id
        return {
            "id": location_id,
            "legacyResourceId": str(gid_number(location_id, "Location") or self._location_number),
            "name": "Shop location" if location_id == self.location_id else "Other location",
            "isActive": True,
        }

    def _product_view(self, product: _Product) -> dict[str, Any]:
        handle = re.sub(r"[^a-z0-9]+", "-", product.title.lower()).strip("-")
        return {
            "id": gid("Product", product.id),
            "legacyResourceId": str(product.id),
            "title": product.title,
            "handle": handle,
        }

    def _variant_view(self, variant: _Variant) -> dict[str, Any]:
        return {
            "id": gid("ProductVariant", variant.id),
            "legacyResourceId": str(variant.id),
            "sku": variant.sku,
            "title": variant.title,
            "displayName": f"{variant.product.title} - {variant.title}",
            "price": str(variant.price),
            "inventoryQuantity": variant.available if variant.tracked else None,
            "createdAt": iso(variant.created_at),
            "updatedAt": iso(variant.updated_at),
            "product": lambda info, **_: self._product_view(variant.product),
            "inventoryItem": lambda info, **_: self._item_view(variant),
        }

    def _item_view(self, variant: _Variant) -> dict[str, Any]:
        def level(info: Any, locationId: str) -> dict[str, Any] | None:  # noqa: N803 - Shopify's name
            if locationId != self.location_id or not variant.stocked:
                return None
            return self._level_view(variant)

        return {
            "id": gid("InventoryItem", variant.item_id),
            "legacyResourceId": str(variant.item_id),
            "sku": variant.sku,
            "tracked": variant.tracked,
            "inventoryLevel": level,
            "variant": lambda info, **_: self._variant_view(variant),
        }

    def _level_view(self, variant: _Variant) -> dict[str, Any]:
        level_id = f"gid://shopify/InventoryLevel/{self._location_number}?inventory_item_id={variant.item_id}"
        values = {"available": variant.available, "on_hand": variant.on_hand, "committed": variant.committed}

        def quantities(info: Any, names: list[str]) -> list[dict[str, Any]]:
            return [
                {
                    "id": f"gid://shopify/InventoryQuantity/{self._location_number}?inventory_item_id={variant.item_id}&name={name}",
                    "name": name,
                    "quantity": values.get(name, 0),
                    "updatedAt": iso(variant.updated_at),
                }
                for name in names
                if name in QUANTITY_NAMES
            ]

        return {
            "id": level_id,
            "quantities": quantities,
            "location": lambda info, **_: self._location_view(),
            "item": lambda info, **_: self._item_view(variant),
            "updatedAt": iso(variant.updated_at),
        }

    def _line_view(self, line: _Line) -> dict[str, Any]:
        variant = line.variant
        return {
            "id": gid("LineItem", line.id),
            "name": f"{variant.product.title} - {variant.title}"
            if variant.title != "Default Title"
            else variant.product.title,
            "title": variant.product.title,
            "sku": variant.sku,
            "quantity": line.quantity,
            "currentQuantity": line.current_quantity,
            "originalUnitPriceSet": self._money(line.price),
            # "The approximate unit price ... This value includes discounts applied to refunded and
            # removed quantities" (real schema): after line and order level discounts.
            "discountedUnitPriceAfterAllDiscountsSet": self._money(line.price - line.discount),
            "variant": lambda info, **_: self._variant_view(variant),
        }

    def _refund_view(self, refund: _Refund) -> dict[str, Any]:
        def refund_line_view(item: _RefundLine) -> dict[str, Any]:
            return {
                "id": gid("RefundLineItem", item.id),
                "quantity": item.quantity,
                "restockType": item.restock_type,
                "restocked": item.restock_type != "NO_RESTOCK",
                "lineItem": lambda info, **_: self._line_view(item.line),
                "location": (lambda info, **_: self._location_view(item.location)) if item.location else None,
            }

        return {
            "id": gid("Refund", refund.id),
            "legacyResourceId": str(refund.id),
            "createdAt": iso(refund.created_at),
            "note": None,
            "refundLineItems": lambda info, **args: _paginate(
                refund.lines, args, lambda item: (item.id, item.id), refund_line_view
            ),
        }

    def _order_view(self, order: _Order) -> dict[str, Any]:
        total = sum((line.price * line.quantity for line in order.lines), Decimal("0"))
        closed = order.cancelled_at is not None or order.financial_status == "REFUNDED"
        fulfillment = "RESTOCKED" if order.cancelled_at is not None else "UNFULFILLED"

        def refunds(info: Any, first: int | None = None) -> list[dict[str, Any]]:
            chosen = order.refunds if first is None else order.refunds[: max(0, first)]
            return [self._refund_view(refund) for refund in chosen]

        return {
            "id": gid("Order", order.id),
            "legacyResourceId": str(order.id),
            "name": order.name,
            "createdAt": iso(order.created_at),
            "processedAt": iso(order.created_at),
            "updatedAt": iso(order.updated_at),
            "cancelledAt": iso(order.cancelled_at),
            "cancelReason": order.cancel_reason,
            "closed": closed,
            "displayFinancialStatus": order.financial_status,
            "displayFulfillmentStatus": fulfillment,
            "email": order.email,
            "currencyCode": self.currency,
            "totalPriceSet": self._money(total),
            "lineItems": lambda info, **args: _paginate(
                order.lines, args, lambda line: (line.id, line.id), self._line_view
            ),
            "refunds": refunds,
            "agreements": lambda info, **args: _paginate(
                order.agreements, args, lambda agreement: (agreement.id, agreement.id), self._agreement_view
            ),
        }

    def _agreement_view(self, agreement: _Agreement) -> dict[str, Any]:
        kind = {"ORDER_EDIT": "OrderEditAgreement"}.get(agreement.reason, "OrderAgreement")

        def sale_view(sale: _Sale) -> dict[str, Any]:
            return {
                "__typename": "ProductSale",
                "id": gid("Sale", sale.id),
                "actionType": sale.action,
                "lineType": "PRODUCT",
                "quantity": sale.quantity,
                "lineItem": lambda info, **_: self._line_view(sale.line),
            }

        return {
            "__typename": kind,
            "id": gid(kind, agreement.id),
            "happenedAt": iso(agreement.happened_at),
            "reason": agreement.reason,
            "sales": lambda info, **args: _paginate(agreement.sales, args, lambda sale: (sale.id, sale.id), sale_view),
        }

    def _visible(self, order: _Order) -> bool:
        """shopify.dev Order object: "Only the last 60 days' worth of orders from a store are
        accessible from the Order object by default" (more with the read_all_orders scope)."""
        return self.read_all_orders or order.created_at >= self._now() - timedelta(days=60)

    # root fields

    def _resolve_installation(self, _root: Any, info: Any) -> dict[str, Any]:
        handles = ["read_orders", "read_products", "read_inventory", "write_inventory", "read_locations"]
        if self.read_all_orders:
            handles.append("read_all_orders")
        return {
            "id": "gid://shopify/AppInstallation/1",
            "accessScopes": [{"handle": handle, "description": handle.replace("_", " ")} for handle in handles],
        }

    def _resolve_location(self, _root: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._location_view() if id == self.location_id else None

    def _resolve_order(self, _root: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        number = gid_number(id, "Order")
        order = self._orders.get(number) if number is not None else None
        return self._order_view(order) if order and self._visible(order) else None

    def _resolve_orders(self, _root: Any, info: Any, **args: Any) -> dict[str, Any]:
        groups = self._checked_search(info, args.get("query"), ORDER_FILTERS)
        orders = [
            order
            for order in self._orders.values()
            if self._visible(order) and _matches(order, groups, self._order_term)
        ]
        sort_key = args.get("sortKey") or "PROCESSED_AT"
        if sort_key == "UPDATED_AT":
            key: Callable[[_Order], tuple[Any, int]] = lambda order: (iso(order.updated_at), order.id)  # noqa: E731
        elif sort_key in ("CREATED_AT", "PROCESSED_AT"):
            key = lambda order: (iso(order.created_at), order.id)  # noqa: E731
        elif sort_key == "ORDER_NUMBER":
            key = lambda order: (order.number, order.id)  # noqa: E731
        else:
            key = lambda order: (order.id, order.id)  # noqa: E731
        return _paginate(orders, args, key, self._order_view)

    def _checked_search(
        self, info: Any, query: str | None, filters: dict[str, frozenset[str] | None]
    ) -> list[list[Term]]:
        """The search's terms that Shopify can use; the others are dropped with a warning.

        Evidence: a live capture quoted in a public repository's Core/searchWarnings.js (HAR of
        2026-08-01, `staff_member:"Kat Owens"` on the orders index): the unknown term is silently
        removed from the AND, the other terms still apply, and `extensions.search` carries
        `{"path", "query", "parsed", "warnings": [{"field", "message": "Invalid search field for
        this query.", "code": "invalid_field"}]}`; the active_shopify_graphql gem's specs mock the
        same shape. The message and code for a known field with a value outside its documented
        values (`status:any`) are not in any capture found: "invalid_value" is the code that file
        lists beside invalid_field, the message is ours.
        """
        groups = _search_groups(query)
        warnings: list[dict[str, str]] = []
        kept_groups: list[list[Term]] = []
        for group in groups:
            kept: list[Term] = []
            for term in group:
                _negate, name, _op, value = term
                if name is not None and name not in filters and not name.startswith("metafields."):
                    warnings.append(
                        {"field": name, "message": "Invalid search field for this query.", "code": "invalid_field"}
                    )
                    continue
                allowed = filters.get(name) if name is not None else None
                if allowed is not None and value.lower() not in allowed:
                    warnings.append(
                        {
                            "field": name or "",
                            "message": f"Input `{value}` is not an accepted value.",
                            "code": "invalid_value",
                        }
                    )
                    continue
                if name in TIME_FILTERS and _parse_when(value) is None and value.lower() != "now":
                    warnings.append(
                        {
                            "field": name or "",
                            "message": f"Input `{value}` is not a valid date.",
                            "code": "invalid_value",
                        }
                    )
                    continue
                kept.append(term)
            if kept:
                kept_groups.append(kept)
        if warnings:
            self._search_warnings.append(
                {
                    "path": [str(step) for step in info.path.as_list()],
                    "query": query,
                    "parsed": _parsed(groups),
                    "warnings": warnings,
                }
            )
        return kept_groups

    def _order_term(self, order: _Order, term: tuple[bool, str | None, str, str]) -> bool:
        negate, name, op, value = term
        result: bool
        if name in ("updated_at", "created_at", "processed_at"):
            wanted = _parse_when(value)
            if wanted is None:
                return True  # Shopify ignores a term it cannot read (and warns in extensions.search)
            actual = order.updated_at if name == "updated_at" else order.created_at
            if op == "" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                result = actual.date() == wanted.date()
            else:
                result = _compare(actual, op, wanted)
        elif name == "status":
            word = value.lower()
            closed = order.cancelled_at is not None or order.financial_status == "REFUNDED"
            result = {
                "open": not closed,
                "closed": closed and order.cancelled_at is None,
                "cancelled": order.cancelled_at is not None,
                "not_closed": not closed,
            }.get(word, True)
        elif name == "financial_status":
            result = order.financial_status.lower() == value.lower()
        elif name == "name":
            result = order.name.lstrip("#") == value.lstrip("#")
        elif name == "email":
            result = _text_match(order.email, value)
        elif name == "id":
            result = str(order.id) == value or gid("Order", order.id) == value
        elif name == "sku":
            result = any(_text_match(line.variant.sku, value) for line in order.lines)
        elif name is None:
            needle = value.lower()
            result = needle in order.name.lower() or needle in order.email.lower()
        else:
            return True  # an unknown search field is ignored, as Shopify does
        return result != negate

    def _resolve_variants(self, _root: Any, info: Any, **args: Any) -> dict[str, Any]:
        groups = _search_groups(args.get("query"))
        variants = [variant for variant in self._variants.values() if _matches(variant, groups, self._variant_term)]
        sort_key = args.get("sortKey") or "ID"
        if sort_key == "SKU":
            key: Callable[[_Variant], tuple[Any, int]] = lambda variant: (variant.sku, variant.id)  # noqa: E731
        elif sort_key in ("TITLE", "FULL_TITLE", "NAME"):
            key = lambda variant: (f"{variant.product.title} {variant.title}", variant.id)  # noqa: E731
        else:
            key = lambda variant: (variant.id, variant.id)  # noqa: E731
        return _paginate(variants, args, key, self._variant_view)

    def _variant_term(self, variant: _Variant, term: tuple[bool, str | None, str, str]) -> bool:
        negate, name, op, value = term
        if name == "sku":
            result = _text_match(variant.sku, value)
        elif name == "title":
            result = _text_match(variant.title, value) or _text_match(variant.product.title, value)
        elif name == "product_id":
            result = str(variant.product.id) == value
        elif name == "id":
            result = str(variant.id) == value
        elif name == "inventory_quantity":
            try:
                result = _compare(variant.available, op, int(value))
            except ValueError:
                return True
        elif name is None:
            needle = value.lower()
            result = needle in variant.sku.lower() or needle in variant.product.title.lower()
        else:
            return True
        return result != negate

    # mutation

    def _resolve_set_quantities(self, _root: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        key = None
        directive = self.schema.get_directive("idempotent")
        if directive is not None:
            for node in info.field_nodes:
                values = get_directive_values(directive, node, info.variable_values)
                if values:
                    key = values["key"]
        # The mutation's own description in the real schemas (2026-01 on): "As of 2026-01, this
        # mutation supports an optional idempotency key using the `@idempotent` directive. As of
        # 2026-04, the idempotency key is required".
        version = _version_key(self._serving)
        if version >= "2026-04" and key is None:
            raise GraphQLError(
                "The @idempotent directive is required for this mutation.",
                nodes=info.field_nodes,
                extensions={"code": "BAD_REQUEST"},
            )
        fingerprint = json.dumps(input, sort_keys=True, default=str)
        if key is not None and key in self._idempotency:
            stored_fingerprint, payload = self._idempotency[key]
            if stored_fingerprint != fingerprint:
                return {
                    "inventoryAdjustmentGroup": None,
                    "userErrors": [
                        {
                            "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                            "field": None,
                            "message": "The same idempotency key cannot be used with different operation parameters.",
                        }
                    ],
                }
            if payload is None:
                return {
                    "inventoryAdjustmentGroup": None,
                    "userErrors": [
                        {
                            "code": "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                            "field": None,
                            "message": "A previous request with this idempotency key failed. "
                            "Retry with a new idempotency key.",
                        }
                    ],
                }
            self.replays += 1
            return payload
        if key is not None and self._fail_mutations > 0:
            self._fail_mutations -= 1
            self._idempotency[key] = (fingerprint, None)
            raise _MutationFailed()
        payload = self._set_quantities(input, version)
        if key is not None:
            self._idempotency[key] = (fingerprint, payload)
        return payload

    def _set_quantities(self, data: dict[str, Any], version: str) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []

        def fail(code: str, path: list[str], message: str) -> None:
            errors.append({"code": code, "field": ["input", *path], "message": message})

        name = data["name"]
        reason = data["reason"]
        reference = data.get("referenceDocumentUri")
        if name not in ("available", "on_hand"):
            fail("INVALID_NAME", ["name"], "The quantity name must be either 'available' or 'on_hand'.")
        if reason not in INVENTORY_REASONS:
            fail("INVALID_REASON", ["reason"], "The specified reason is invalid.")
        if reference is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+", reference):
            fail("INVALID_REFERENCE_DOCUMENT", ["referenceDocumentUri"], "The specified reference document is invalid.")
        ignore_compare = bool(data.get("ignoreCompareQuantity"))
        seen: set[tuple[int, str]] = set()
        plan: list[tuple[_Variant, int]] = []
        for index, entry in enumerate(data["quantities"]):
            path = ["quantities", str(index)]
            item_number = gid_number(entry["inventoryItemId"], "InventoryItem")
            variant = self._by_item.get(item_number) if item_number is not None else None
            if variant is None:
                fail(
                    "INVALID_INVENTORY_ITEM",
                    [*path, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                )
                continue
            if entry["locationId"] != self.location_id:
                fail("INVALID_LOCATION", [*path, "locationId"], "The specified location could not be found.")
                continue
            if not variant.stocked:
                fail(
                    # the enum value is gone from the real 2026-10 schema; what Shopify answers
                    # there instead is not documented: INVALID_INVENTORY_ITEM is our stand-in
                    "ITEM_NOT_STOCKED_AT_LOCATION" if version <= "2026-07" else "INVALID_INVENTORY_ITEM",
                    [*path, "inventoryItemId"],
                    "The specified inventory item is not stocked at the location.",
                )
                continue
            pair = (variant.item_id, entry["locationId"])
            if pair in seen:
                fail(
                    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    [*path, "inventoryItemId"],
                    "The combination of inventoryItemId and locationId must be unique.",
                )
                continue
            seen.add(pair)
            quantity = entry["quantity"]
            if quantity > QUANTITY_LIMIT:
                fail(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*path, "quantity"],
                    "The total quantity can't be higher than 1,000,000,000.",
                )
                continue
            if quantity < -QUANTITY_LIMIT:
                fail(
                    "INVALID_QUANTITY_TOO_LOW",
                    [*path, "quantity"],
                    "The total quantity can't be lower than -1,000,000,000.",
                )
                continue
            if name == "on_hand" and quantity < 0:
                fail("INVALID_QUANTITY_NEGATIVE", [*path, "quantity"], "The quantity can't be negative.")
                continue
            current = variant.available if name == "available" else variant.on_hand
            if version >= "2026-04":
                if "changeFromQuantity" not in entry:
                    fail(
                        "COMPARE_QUANTITY_REQUIRED",
                        [*path, "changeFromQuantity"],
                        "The changeFromQuantity argument must be given to each quantity (null skips the check).",
                    )
                    continue
                if entry["changeFromQuantity"] is not None and entry["changeFromQuantity"] != current:
                    fail(
                        "CHANGE_FROM_QUANTITY_STALE",
                        [*path, "changeFromQuantity"],
                        "The changeFromQuantity value does not match persisted value.",
                    )
                    continue
            elif version >= "2026-01" and "changeFromQuantity" in entry:
                if entry["changeFromQuantity"] is not None and entry["changeFromQuantity"] != current:
                    fail(
                        "CHANGE_FROM_QUANTITY_STALE",
                        [*path, "changeFromQuantity"],
                        "The changeFromQuantity value does not match persisted value.",
                    )
                    continue
            elif not ignore_compare:
                compare = entry.get("compareQuantity")
                if compare is None:
                    fail(
                        "COMPARE_QUANTITY_REQUIRED",
                        [*path, "compareQuantity"],
                        "The compareQuantity argument must be given to each quantity or ignored using "
                        "ignoreCompareQuantity.",
                    )
                    continue
                if compare != current:
                    fail(
                        "COMPARE_QUANTITY_STALE",
                        [*path, "compareQuantity"],
                        "The compareQuantity value does not match persisted value.",
                    )
                    continue
            plan.append((variant, quantity))
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}

        moment = self._stamp_now()
        changes: list[dict[str, Any]] = []
        for variant, quantity in plan:
            before_available, before_on_hand = variant.available, variant.on_hand
            if name == "available":
                variant.available = quantity
            else:
                variant.available = quantity - variant.committed
            variant.updated_at = moment
            for quantity_name, before, after in (
                ("available", before_available, variant.available),
                ("on_hand", before_on_hand, variant.on_hand),
            ):
                if after == before:
                    continue
                changes.append(
                    {
                        "name": quantity_name,
                        "delta": after - before,
                        "quantityAfterChange": after,
                        "ledgerDocumentUri": None if quantity_name == "available" else reference,
                        "item": self._item_view(variant),
                        "location": self._location_view(),
                        "_item_id": gid("InventoryItem", variant.item_id),
                    }
                )

        def changes_view(
            info: Any,
            inventoryItemIds: list[str] | None = None,  # noqa: N803 - Shopify's names
            locationIds: list[str] | None = None,  # noqa: N803
            quantityNames: list[str] | None = None,  # noqa: N803
        ) -> list[dict[str, Any]]:
            return [
                change
                for change in changes
                if (inventoryItemIds is None or change["_item_id"] in inventoryItemIds)
                and (locationIds is None or self.location_id in locationIds)
                and (quantityNames is None or change["name"] in quantityNames)
            ]

        group = {
            "id": gid("InventoryAdjustmentGroup", next(self._ids)),
            "createdAt": iso(moment),
            "reason": reason,
            "referenceDocumentUri": reference,
            "changes": changes_view,
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # ------------------------------------------------------------------ HTTP

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware(self.faults, _route_of, _error_body)])
        app.router.add_post("/admin/api/{version}/graphql.json", self._handle_graphql)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        return app

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"errors": "Not Found"}, status=404)

    async def _handle_graphql(self, request: web.Request) -> web.Response:
        requested = request.match_info["version"]
        version = self.serve_version(requested)
        if version is None:
            return web.json_response({"errors": "Not Found"}, status=404)
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        self.served[f"{requested}->{version}"] += 1
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
        raw = await request.read()
        query: Any = None
        variables: Any = None
        operation_name: Any = None
        if request.content_type == "application/graphql":
            query = raw.decode("utf-8", "replace")
        else:
            try:
                payload = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                payload = None
            if isinstance(payload, dict):
                query, variables, operation_name = (
                    payload.get("query"),
                    payload.get("variables"),
                    payload.get("operationName"),
                )
        if not isinstance(query, str) or not query.strip() or not isinstance(variables, dict | None):
            return web.json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, status=400, headers=headers
            )
        try:
            body = self.execute_document(
                query, variables, operation_name if isinstance(operation_name, str) else None, version
            )
        except _MutationFailed:
            return web.json_response({"errors": "Service Unavailable"}, status=503, headers=headers)
        if self.rewrite is not None:
            body = self.rewrite(body)
        if self._lose_answers > 0:
            self._lose_answers -= 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the request when the transport is gone
        return web.json_response(body, headers=headers, dumps=_dumps)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _MutationFailed(Exception):
    """A mutation that failed inside Shopify after it took its idempotency key (fail_mutations)."""


def _locations(exc: GraphQLError) -> list[dict[str, int]]:
    return [{"line": location.line, "column": location.column} for location in exc.locations or []]


def _dumps(body: Any) -> str:
    # NaN and Infinity are written as JavaScript writes them, so that a test can put them in an answer
    return json.dumps(body, allow_nan=True)


def _route_of(request: web.Request) -> str:
    return f"{request.method} {request.path}"


def _error_body(status: int) -> bytes:
    if status == 401:
        body: Any = {"errors": INVALID_TOKEN}
    elif status == 429:
        body = {
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}]
        }
    elif status == 403:
        body = {"errors": "[API] This action requires merchant approval for the required access scope."}
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = {"errors": phrase}
    return json.dumps(body).encode()


def _encode_cursor(key: tuple[Any, int]) -> str:
    raw = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True).decode())
        return (data["last_value"], int(data["last_id"]))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from None


def _paginate(
    items: list[Any],
    args: dict[str, Any],
    key: Callable[[Any], tuple[Any, int]],
    view: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """A Relay connection over `items` in `key` order (reversed by `reverse`), keyset cursors."""
    reverse = bool(args.get("reverse"))
    keyed = sorted(((key(item), item) for item in items), key=lambda pair: pair[0], reverse=reverse)
    low, high = 0, len(keyed)
    after, before = args.get("after"), args.get("before")
    try:
        if after:
            mark = _decode_cursor(after)
            low = next((i for i, (k, _) in enumerate(keyed) if (k < mark if reverse else k > mark)), len(keyed))
        if before:
            mark = _decode_cursor(before)
            high = next((i for i, (k, _) in enumerate(keyed) if (k <= mark if reverse else k >= mark)), len(keyed))
    except TypeError:  # a cursor from another sort order
        raise GraphQLError("Invalid cursor for current pagination sort.", extensions={"code": "BAD_REQUEST"}) from None
    high = max(low, high)
    first, last = args.get("first"), args.get("last")
    start, end = low, high
    if first is not None:
        end = min(high, low + max(0, first))
    elif last is not None:
        start = max(low, high - max(0, last))
    page = keyed[start:end]
    nodes = [view(item) for _, item in page]
    edges = [{"cursor": _encode_cursor(k), "node": node} for (k, _), node in zip(page, nodes, strict=True)]
    return {
        "edges": edges,
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": end < len(keyed),
            "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }
