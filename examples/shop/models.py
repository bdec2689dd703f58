"""The shop's HTTP shapes: request bodies and the order view (camelCase on the wire),
the ETag of a version, and the headers commands take."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from examples.shop.domain import Order


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PlaceOrder(Body):
    order_id: str | None = Field(None, description="chosen by the client, or a new UUID")
    customer: str = Field(min_length=1)


class AddLine(Body):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    price: Decimal = Field(ge=0)


class RemoveLine(Body):
    sku: str = Field(min_length=1)


class Pay(Body):
    amount: Decimal


class Cancel(Body):
    reason: str = ""


class Line(Body):
    sku: str
    quantity: int
    price: str


class OrderView(Body):
    order_id: str
    customer: str
    status: str
    lines: list[Line]
    total: str
    paid: str
    version: int


def view(order: Order) -> OrderView:
    return OrderView(
        order_id=order.id,
        customer=order.customer,
        status=order.status,
        lines=[Line(sku=s, **line) for s, line in sorted(order.lines.items())],
        total=str(order.total),
        paid=order.paid,
        version=order.version,
    )


def etag(version: int) -> str:
    return f'"{version}"'


IfMatch = Annotated[
    str | None,
    Header(description='the version the command is decided on: "<version>" or *'),
]
IdempotencyKey = Annotated[
    str | None,
    Header(description="the same key on a retry makes the retry write nothing new"),
]
