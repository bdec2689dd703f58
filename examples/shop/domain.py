"""Orders: placed by a customer, lines added and removed while open, then paid or cancelled.

Events on the wire: ``OrderPlaced`` {orderId, customer}, ``LineAdded`` {sku, quantity,
price}, ``LineRemoved`` {sku}, ``OrderPaid`` {amount}, ``OrderCancelled`` {reason}.
Prices and amounts are decimals (strings on the wire).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from kes import Aggregate, DomainError, event


class OrderError(DomainError):
    """A command broke a rule of the order; nothing was recorded."""

    code = "order_rule"
    #: the HTTP status that fits: 409, the order's state forbids it; 422, the input does
    http_status: ClassVar[int] = 409


class OrderClosedError(OrderError):
    code = "order_closed"


class EmptyOrderError(OrderError):
    code = "order_empty"


class WrongAmountError(OrderError):
    code = "wrong_amount"


class UnknownLineError(OrderError):
    code = "unknown_line"


class BadQuantityError(OrderError):
    code = "bad_quantity"
    http_status = 422


class Order(Aggregate, id_field="order_id"):
    """An order and its lines (sku -> quantity and unit price)."""

    status: str
    lines: dict[str, dict[str, Any]]

    @event("OrderPlaced")
    def __init__(self, order_id: str, customer: str) -> None:
        self.customer = customer
        self.status = "open"
        self.lines = {}
        self.paid = "0"

    @property
    def total(self) -> Decimal:
        return sum(
            (Decimal(line["price"]) * line["quantity"] for line in self.lines.values()),
            Decimal(0),
        )

    def add_line(self, sku: str, quantity: int, price: Decimal) -> None:
        self._require_open("add a line to")
        if quantity < 1:
            raise BadQuantityError(f"quantity must be at least 1, got {quantity} for {sku!r}.")
        if price < 0:
            raise BadQuantityError(f"price must not be negative, got {price} for {sku!r}.")
        self._line_added(sku, quantity, price)

    def remove_line(self, sku: str) -> None:
        self._require_open("remove a line from")
        if sku not in self.lines:
            raise UnknownLineError(
                f"order {self.id!r} has no line {sku!r}; its lines are {sorted(self.lines)}."
            )
        self._line_removed(sku)

    def pay(self, amount: Decimal) -> None:
        self._require_open("pay")
        if not self.lines:
            raise EmptyOrderError(f"order {self.id!r} has no lines; add one before paying.")
        if amount != self.total:
            raise WrongAmountError(
                f"order {self.id!r} totals {self.total}; a payment of {amount} does not match."
            )
        self._paid(amount)

    def cancel(self, reason: str = "") -> None:
        if self.status == "paid":
            raise OrderClosedError(f"order {self.id!r} is paid; a paid order cannot be cancelled.")
        if self.status == "open":
            self._cancelled(reason)

    def _require_open(self, action: str) -> None:
        if self.status != "open":
            raise OrderClosedError(f"cannot {action} order {self.id!r}: it is {self.status}.")

    @event("LineAdded")
    def _line_added(self, sku: str, quantity: int, price: Decimal) -> None:
        held = self.lines.get(sku, {"quantity": 0})
        self.lines[sku] = {"quantity": held["quantity"] + quantity, "price": str(price)}

    @event("LineRemoved")
    def _line_removed(self, sku: str) -> None:
        del self.lines[sku]

    @event("OrderPaid")
    def _paid(self, amount: Decimal) -> None:
        self.status = "paid"
        self.paid = str(amount)

    @event("OrderCancelled")
    def _cancelled(self, reason: str) -> None:
        self.status = "cancelled"
