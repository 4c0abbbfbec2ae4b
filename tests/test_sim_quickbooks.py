"""The QuickBooks Desktop simulator (connex_tui.sim.quickbooks) answers hand-written qbXML like QuickBooks.

Tests that depend on schema validation are skipped, with the reason shown, when Intuit's
qbxmlops130.xsd is not found (CONNEX_QBXML_SPEC_DIR or ../shared/spec beside the checkout).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from lxml import etree

from connex_tui.sim.quickbooks import QBXMLRequestError, QuickBooksSim
from connex_tui.specdir import qbxml_schema

SCHEMA = qbxml_schema()
needs_schema = pytest.mark.skipif(
    SCHEMA is None,
    reason="qbXML schema qbxmlops130.xsd not found (set CONNEX_QBXML_SPEC_DIR or provide ../shared/spec)",
)

T0 = datetime(2024, 5, 1, 8, 30, 0)


class Clock:
    """A settable clock: the simulator still moves each change at least one second on."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def envelope(body: str, on_error: str = "stopOnError") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<?qbxml version="13.0"?>\n'
        f'<QBXML><QBXMLMsgsRq onError="{on_error}">{body}</QBXMLMsgsRq></QBXML>'
    )


def parse(response: str) -> etree._Element:
    """Parse a response and, when the schema is present, check it is valid qbXML too."""
    root = etree.fromstring(response.encode("utf-8"))
    if SCHEMA is not None:
        SCHEMA.assertValid(root)
    return root


def rs_list(response: str) -> list[etree._Element]:
    return list(parse(response).find("QBXMLMsgsRs"))


def one_rs(response: str) -> etree._Element:
    rs = rs_list(response)
    assert len(rs) == 1
    return rs[0]


def qoh(sim: QuickBooksSim, name: str) -> Decimal:
    return sim.item(name).quantity_on_hand


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> QuickBooksSim:
    s = QuickBooksSim(clock=clock)
    s.add_item("redwine", 20)
    s.add_item("whitewine", 8, manufacturer_part_number="WW-750")
    return s


SEED_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<?qbxml version="13.0"?>
<QBXML>
  <QBXMLMsgsRq onError="stopOnError">
    <SalesReceiptAddRq requestID="ord-1001-a1">
      <SalesReceiptAdd>
        <CustomerRef><FullName>Web Store</FullName></CustomerRef>
        <TxnDate>2024-05-01</TxnDate>
        <RefNumber>W1001</RefNumber>
        <Memo>Shop order #1001</Memo>
        <SalesReceiptLineAdd>
          <ItemRef><FullName>redwine</FullName></ItemRef>
          <Desc>Red wine</Desc>
          <Quantity>5</Quantity>
          <Rate>12.50</Rate>
        </SalesReceiptLineAdd>
      </SalesReceiptAdd>
    </SalesReceiptAddRq>
  </QBXMLMsgsRq>
</QBXML>
"""


def sales_receipt(ref: str, *lines: tuple[str, str], customer: str = "Web Store", rid: str = "1") -> str:
    body = "".join(
        f"<SalesReceiptLineAdd><ItemRef><FullName>{item}</FullName></ItemRef>"
        f"<Quantity>{qty}</Quantity></SalesReceiptLineAdd>"
        for item, qty in lines
    )
    return (
        f'<SalesReceiptAddRq requestID="{rid}"><SalesReceiptAdd>'
        f"<CustomerRef><FullName>{customer}</FullName></CustomerRef>"
        f"<RefNumber>{ref}</RefNumber>{body}</SalesReceiptAdd></SalesReceiptAddRq>"
    )


# --------------------------------------------------------------------------------------------
# Adds


def test_seed_sales_receipt_lowers_stock_and_bumps_time_modified(sim: QuickBooksSim) -> None:
    before = sim.item("redwine")
    before_modified, before_seq = before.time_modified, before.edit_sequence

    rs = one_rs(sim.process(SEED_REQUEST))

    assert rs.tag == "SalesReceiptAddRs"
    assert rs.get("requestID") == "ord-1001-a1"
    assert (rs.get("statusCode"), rs.get("statusSeverity"), rs.get("statusMessage")) == ("0", "Info", "Status OK")
    ret = rs.find("SalesReceiptRet")
    assert re.fullmatch(r"[0-9A-F]+-\d+", ret.findtext("TxnID"))
    assert ret.findtext("RefNumber") == "W1001"
    assert ret.findtext("TotalAmount") == "62.50"
    assert ret.findtext("CustomerRef/FullName") == "Web Store"
    # Ret children come in the schema's order.
    names = [c.tag for c in ret]
    assert names[:8] == [
        "TxnID",
        "TimeCreated",
        "TimeModified",
        "EditSequence",
        "TxnNumber",
        "CustomerRef",
        "TxnDate",
        "RefNumber",
    ]
    assert names.index("TotalAmount") < names.index("Memo") < names.index("SalesReceiptLineRet")

    assert qoh(sim, "redwine") == 15
    assert sim.item("redwine").time_modified > before_modified
    assert sim.item("redwine").edit_sequence != before_seq
    assert qoh(sim, "whitewine") == 8
    assert len(sim.transactions) == 1 and sim.transactions[0].ref_number == "W1001"
    assert sim.requests == [SEED_REQUEST]


def test_quantity_on_hand_seen_through_an_item_query(sim: QuickBooksSim) -> None:
    sim.process(SEED_REQUEST)
    rs = one_rs(
        sim.process(envelope('<ItemInventoryQueryRq requestID="q"><FullName>redwine</FullName></ItemInventoryQueryRq>'))
    )
    ret = rs.find("ItemInventoryRet")
    assert ret.findtext("QuantityOnHand") == "15"
    assert ret.findtext("TimeModified").endswith("-07:00")
    assert ret.findtext("EditSequence") == sim.item("redwine").edit_sequence


def test_unknown_item_is_3140_and_changes_nothing(sim: QuickBooksSim) -> None:
    rs = one_rs(sim.process(envelope(sales_receipt("W2", ("redwine", "2"), ("Nope:Missing", "1")))))
    assert rs.get("statusCode") == "3140"
    assert rs.get("statusSeverity") == "Error"
    assert rs.get("statusMessage") == (
        'There is an invalid reference to QuickBooks Item "Nope:Missing" in the SalesReceipt line.'
    )
    assert rs.find("SalesReceiptRet") is None
    assert qoh(sim, "redwine") == 20  # the valid first line was not applied either
    assert sim.transactions == []


def test_unknown_customer_is_3140_naming_the_transaction(sim: QuickBooksSim) -> None:
    req = envelope(
        '<InvoiceAddRq requestID="i"><InvoiceAdd><CustomerRef><FullName>Jane "JD" Doe</FullName></CustomerRef>'
        "<InvoiceLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>1</Quantity></InvoiceLineAdd>"
        "</InvoiceAdd></InvoiceAddRq>"
    )
    response = sim.process(req)
    rs = one_rs(response)
    assert rs.get("statusCode") == "3140"
    assert (
        rs.get("statusMessage")
        == 'There is an invalid reference to QuickBooks Customer "Jane "JD" Doe" in the Invoice.'
    )
    # Quotes in attribute values are escaped in the raw text.
    assert "Customer &quot;Jane &quot;JD&quot; Doe&quot; in the Invoice." in response
    assert qoh(sim, "redwine") == 20

    sim.add_customer('Jane "JD" Doe')
    assert one_rs(sim.process(req)).get("statusCode") == "0"
    assert qoh(sim, "redwine") == 19


def test_locked_item_fails_with_3175_and_changes_nothing(sim: QuickBooksSim) -> None:
    sim.locked_items.add("whitewine")
    rs = one_rs(sim.process(envelope(sales_receipt("W3", ("redwine", "1"), ("whitewine", "1")))))
    assert rs.get("statusCode") == "3175"
    assert rs.get("statusSeverity") == "Error"
    assert "in use by another user" in rs.get("statusMessage")
    assert (qoh(sim, "redwine"), qoh(sim, "whitewine")) == (20, 8)
    sim.locked_items.clear()
    assert (
        one_rs(sim.process(envelope(sales_receipt("W3", ("redwine", "1"), ("whitewine", "1"))))).get("statusCode")
        == "0"
    )
    assert (qoh(sim, "redwine"), qoh(sim, "whitewine")) == (19, 7)


def test_invoice_lowers_credit_memo_raises_sales_order_only_reserves(sim: QuickBooksSim) -> None:
    invoice = (
        '<InvoiceAddRq requestID="inv"><InvoiceAdd><CustomerRef><FullName>Web Store</FullName></CustomerRef>'
        "<RefNumber>I1</RefNumber>"
        "<InvoiceLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>3</Quantity></InvoiceLineAdd>"
        "</InvoiceAdd></InvoiceAddRq>"
    )
    credit = (
        '<CreditMemoAddRq requestID="cm"><CreditMemoAdd><CustomerRef><FullName>Web Store</FullName></CustomerRef>'
        "<RefNumber>C1</RefNumber>"
        "<CreditMemoLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>2</Quantity></CreditMemoLineAdd>"
        "</CreditMemoAdd></CreditMemoAddRq>"
    )
    order = (
        '<SalesOrderAddRq requestID="so"><SalesOrderAdd><CustomerRef><FullName>Web Store</FullName></CustomerRef>'
        "<RefNumber>S1</RefNumber>"
        "<SalesOrderLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>4</Quantity></SalesOrderLineAdd>"
        "</SalesOrderAdd></SalesOrderAddRq>"
    )
    rs = one_rs(sim.process(envelope(invoice)))
    assert rs.get("statusCode") == "0" and rs.find("InvoiceRet/BalanceRemaining").text == "30.00"
    assert qoh(sim, "redwine") == 17

    rs = one_rs(sim.process(envelope(credit)))
    assert rs.get("statusCode") == "0" and rs.find("CreditMemoRet") is not None
    assert qoh(sim, "redwine") == 19

    before = sim.item("redwine").time_modified
    rs = one_rs(sim.process(envelope(order)))
    assert rs.get("statusCode") == "0" and rs.find("SalesOrderRet") is not None
    assert qoh(sim, "redwine") == 19
    assert sim.item("redwine").quantity_on_sales_order == 4
    assert sim.item("redwine").time_modified > before
    q = one_rs(
        sim.process(
            envelope(
                "<ItemInventoryQueryRq><FullName>redwine</FullName>"
                "<IncludeRetElement>QuantityOnHand</IncludeRetElement>"
                "<IncludeRetElement>QuantityOnSalesOrder</IncludeRetElement></ItemInventoryQueryRq>"
            )
        )
    )
    assert [(c.tag, c.text) for c in q.find("ItemInventoryRet")] == [
        ("QuantityOnHand", "19"),
        ("QuantityOnSalesOrder", "4"),
    ]
    assert [t.kind for t in sim.transactions] == ["invoice", "credit_memo", "sales_order"]


def test_include_ret_element_on_an_add(sim: QuickBooksSim) -> None:
    req = envelope(
        '<SalesReceiptAddRq requestID="1"><SalesReceiptAdd>'
        "<RefNumber>W9</RefNumber>"
        "<SalesReceiptLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>1</Quantity></SalesReceiptLineAdd>"
        "</SalesReceiptAdd>"
        "<IncludeRetElement>TxnID</IncludeRetElement>"
        "<IncludeRetElement>EditSequence</IncludeRetElement>"
        "<IncludeRetElement>RefNumber</IncludeRetElement>"
        "</SalesReceiptAddRq>"
    )
    ret = one_rs(sim.process(req)).find("SalesReceiptRet")
    assert [c.tag for c in ret] == ["TxnID", "EditSequence", "RefNumber"]


def test_duplicate_ref_numbers_are_accepted_and_found_by_query(sim: QuickBooksSim) -> None:
    for _ in range(2):
        assert one_rs(sim.process(envelope(sales_receipt("W77", ("redwine", "1"))))).get("statusCode") == "0"
    assert qoh(sim, "redwine") == 18

    rs = one_rs(
        sim.process(
            envelope(
                '<SalesReceiptQueryRq requestID="chk"><RefNumber>w77</RefNumber><RefNumber>W78</RefNumber>'
                "<IncludeRetElement>TxnID</IncludeRetElement><IncludeRetElement>RefNumber</IncludeRetElement>"
                "</SalesReceiptQueryRq>"
            )
        )
    )
    assert rs.get("statusCode") == "0"
    rets = rs.findall("SalesReceiptRet")
    assert len(rets) == 2
    assert {r.findtext("TxnID") for r in rets} == {t.txn_id for t in sim.transactions}
    assert all([c.tag for c in r] == ["TxnID", "RefNumber"] for r in rets)

    none = one_rs(
        sim.process(envelope('<SalesReceiptQueryRq requestID="chk2"><RefNumber>W78</RefNumber></SalesReceiptQueryRq>'))
    )
    assert (none.get("statusCode"), none.get("statusSeverity")) == ("1", "Info")
    assert none.get("statusMessage") == "A query request did not find a matching object in QuickBooks"
    # Another transaction type does not see sales receipts.
    assert (
        one_rs(sim.process(envelope("<InvoiceQueryRq><RefNumber>W77</RefNumber></InvoiceQueryRq>"))).get("statusCode")
        == "1"
    )


def test_query_by_txn_id_and_line_items(sim: QuickBooksSim) -> None:
    sim.process(envelope(sales_receipt("W5", ("redwine", "2"), ("whitewine", "1"))))
    txn_id = sim.transactions[0].txn_id
    rs = one_rs(
        sim.process(
            envelope(
                f"<SalesReceiptQueryRq><TxnID>{txn_id}</TxnID><IncludeLineItems>true</IncludeLineItems></SalesReceiptQueryRq>"
            )
        )
    )
    lines = rs.findall("SalesReceiptRet/SalesReceiptLineRet")
    assert [(ln.findtext("ItemRef/FullName"), ln.findtext("Quantity")) for ln in lines] == [
        ("redwine", "2"),
        ("whitewine", "1"),
    ]
    rs = one_rs(sim.process(envelope(f"<SalesReceiptQueryRq><TxnID>{txn_id}</TxnID></SalesReceiptQueryRq>")))
    assert rs.find("SalesReceiptRet/SalesReceiptLineRet") is None


def test_on_error_stop_versus_continue(sim: QuickBooksSim) -> None:
    body = (
        sales_receipt("A", ("redwine", "1"), rid="r1")
        + sales_receipt("B", ("ghost", "1"), rid="r2")
        + sales_receipt("C", ("redwine", "1"), rid="r3")
    )
    stop = rs_list(sim.process(envelope(body, "stopOnError")))
    assert [(r.get("requestID"), r.get("statusCode")) for r in stop] == [("r1", "0"), ("r2", "3140")]
    assert qoh(sim, "redwine") == 19

    cont = rs_list(sim.process(envelope(body, "continueOnError")))
    assert [(r.get("requestID"), r.get("statusCode")) for r in cont] == [("r1", "0"), ("r2", "3140"), ("r3", "0")]
    assert qoh(sim, "redwine") == 17


def test_unsupported_request_type_answers_1000(sim: QuickBooksSim) -> None:
    rs = rs_list(
        sim.process(
            envelope('<CustomerQueryRq requestID="c"/>' + sales_receipt("X", ("redwine", "1")), "continueOnError")
        )
    )
    assert rs[0].tag == "CustomerQueryRs"
    assert (rs[0].get("statusCode"), rs[0].get("statusSeverity")) == ("1000", "Error")
    assert "not supported by the simulator" in rs[0].get("statusMessage")
    assert rs[1].get("statusCode") == "0"


# --------------------------------------------------------------------------------------------
# Document-level errors


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('<?xml version="1.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML>', id="no-qbxml-pi"),
        pytest.param(
            '<?xml version="1.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML><?qbxml version="13.0"?>',
            id="pi-after-root",
        ),
        pytest.param('<?qbxml version="14.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML>', id="version-14"),
        pytest.param(
            '<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"></QBXML>', id="not-well-formed"
        ),
        pytest.param(
            '<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError">'
            "<SalesReceiptQueryRq><RefNumber>A & B</RefNumber></SalesReceiptQueryRq></QBXMLMsgsRq></QBXML>",
            id="unescaped-ampersand",
        ),
        pytest.param(
            '<?qbxml version="13.0"?><!DOCTYPE QBXML [<!ENTITY x "y">]>'
            '<QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML>',
            id="doctype",
        ),
        pytest.param(
            '<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError">'
            "<SalesReceiptQueryRq><RefNumber>\u201cW1\u201d</RefNumber></SalesReceiptQueryRq></QBXMLMsgsRq></QBXML>",
            id="non-latin1",
        ),
    ],
)
def test_document_errors_raise_0x80040400(sim: QuickBooksSim, text: str) -> None:
    with pytest.raises(QBXMLRequestError) as exc:
        sim.process(text)
    assert exc.value.hresult == "0x80040400"
    assert exc.value.message == "QuickBooks found an error when parsing the provided XML text stream."
    assert sim.requests[-1] == text
    assert qoh(sim, "redwine") == 20


def test_document_errors_without_validation_too(clock: Clock) -> None:
    sim = QuickBooksSim(clock=clock, validate=False)
    with pytest.raises(QBXMLRequestError):
        sim.process('<?xml version="1.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML>')
    ok = sim.process('<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError"/></QBXML>')
    assert etree.fromstring(ok.encode()).find("QBXMLMsgsRs") is not None


@needs_schema
def test_element_out_of_schema_order_raises_0x80040400(sim: QuickBooksSim) -> None:
    # RefNumber must follow TxnDate in SalesReceiptAdd (the qbwc/qbwc#74 mistake).
    req = envelope(
        '<SalesReceiptAddRq requestID="1"><SalesReceiptAdd>'
        "<CustomerRef><FullName>Web Store</FullName></CustomerRef>"
        "<RefNumber>W1</RefNumber><TxnDate>2024-05-01</TxnDate>"
        "<SalesReceiptLineAdd><ItemRef><FullName>redwine</FullName></ItemRef><Quantity>1</Quantity></SalesReceiptLineAdd>"
        "</SalesReceiptAdd></SalesReceiptAddRq>"
    )
    with pytest.raises(QBXMLRequestError) as exc:
        sim.process(req)
    assert exc.value.hresult == "0x80040400"
    assert qoh(sim, "redwine") == 20 and sim.transactions == []


@needs_schema
@pytest.mark.parametrize(
    "rq",
    [
        pytest.param(
            "<ItemInventoryQueryRq><ActiveStatus>All</ActiveStatus><MaxReturned>5</MaxReturned></ItemInventoryQueryRq>",
            id="filter-order",
        ),
        pytest.param(
            "<ItemInventoryQueryRq><MaxReturned>5</MaxReturned><SKU>x</SKU></ItemInventoryQueryRq>",
            id="unknown-element",
        ),
        pytest.param(
            "<SalesReceiptAddRq><SalesReceiptAdd><RefNumber>W1</RefNumber></SalesReceiptAdd></SalesReceiptAddRq>",
            id="receipt-without-lines",
        ),
        pytest.param(
            "<SalesReceiptAddRq><SalesReceiptAdd><SalesReceiptLineAdd><ItemRef><FullName>redwine</FullName>"
            "</ItemRef><Quantity>1</Quantity><Amount>1.5</Amount></SalesReceiptLineAdd></SalesReceiptAdd>"
            "</SalesReceiptAddRq>",
            id="amount-one-decimal",
        ),
        pytest.param(
            "<InvoiceAddRq><InvoiceAdd><InvoiceLineAdd><ItemRef><FullName>redwine</FullName></ItemRef>"
            "</InvoiceLineAdd></InvoiceAdd></InvoiceAddRq>",
            id="invoice-without-customer",
        ),
    ],
)
def test_schema_violations_raise_0x80040400(sim: QuickBooksSim, rq: str) -> None:
    with pytest.raises(QBXMLRequestError) as exc:
        sim.process(envelope(rq))
    assert exc.value.hresult == "0x80040400"


@needs_schema
def test_missing_on_error_attribute_is_a_parse_error(sim: QuickBooksSim) -> None:
    with pytest.raises(QBXMLRequestError):
        sim.process('<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq><ItemInventoryQueryRq/></QBXMLMsgsRq></QBXML>')


@needs_schema
def test_string_too_long_is_3070_for_that_request_only(sim: QuickBooksSim) -> None:
    rs = rs_list(
        sim.process(
            envelope(
                sales_receipt("W123456789012", ("redwine", "1"), rid="long")
                + sales_receipt("W1", ("redwine", "1"), rid="ok"),
                "continueOnError",
            )
        )
    )
    assert [(r.get("requestID"), r.get("statusCode")) for r in rs] == [("long", "3070"), ("ok", "0")]
    assert rs[0].get("statusMessage") == 'The string "W123456789012" in the field "RefNumber" is too long.'
    assert qoh(sim, "redwine") == 19


def test_without_schema_the_simulator_logs_it_and_warns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An optional part missing is a log line (which the interface keeps off the screen), never a
    Python warning that the terminal would show over the interface."""
    import warnings

    import structlog.testing

    import connex_tui.sim.quickbooks as qb

    monkeypatch.setattr(qb, "qbxml_schema", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with structlog.testing.capture_logs() as logs:
            sim = qb.QuickBooksSim()
    assert sim.validate is False
    assert [(e["event"], e["log_level"]) for e in logs] == [("qbxml_schema_missing", "warning")]
    assert "will not validate" in logs[0]["detail"]


# --------------------------------------------------------------------------------------------
# Item queries


def item_query(inner: str, rid: str = "q", attrs: str = "") -> str:
    return envelope(f'<ItemInventoryQueryRq requestID="{rid}"{attrs}>{inner}</ItemInventoryQueryRq>')


def list_ids(rs: etree._Element) -> list[str]:
    return [r.findtext("ListID") for r in rs.findall("ItemInventoryRet")]


def test_iterator_pages_250_items_in_three_pages(clock: Clock) -> None:
    sim = QuickBooksSim(clock=clock)
    for i in range(250):
        sim.add_item(f"SKU-{i:04d}", i)
    first = one_rs(
        sim.process(
            item_query(
                "<MaxReturned>100</MaxReturned><ActiveStatus>All</ActiveStatus>"
                "<IncludeRetElement>ListID</IncludeRetElement><IncludeRetElement>TimeModified</IncludeRetElement>",
                attrs=' iterator="Start"',
            )
        )
    )
    iterator_id = first.get("iteratorID")
    assert re.fullmatch(r"\{[0-9a-f-]{36}\}", iterator_id)
    pages = [first]
    while pages[-1].get("iteratorRemainingCount") != "0":
        pages.append(
            one_rs(
                sim.process(
                    item_query(
                        "<MaxReturned>100</MaxReturned>",
                        rid=f"q{len(pages)}",
                        attrs=f' iterator="Continue" iteratorID="{iterator_id}"',
                    )
                )
            )
        )
        assert len(pages) <= 3
    assert [p.get("iteratorRemainingCount") for p in pages] == ["150", "50", "0"]
    assert [p.get("retCount") for p in pages] == ["100", "100", "50"]
    assert all(p.get("iteratorID") == iterator_id and p.get("statusCode") == "0" for p in pages)
    seen = [lid for p in pages for lid in list_ids(p)]
    assert len(seen) == 250 and set(seen) == {it.list_id for it in sim.items.values()}
    # Ordered by TimeModified across pages; IncludeRetElement from Start carries over.
    stamps = [r.findtext("TimeModified") for p in pages for r in p.findall("ItemInventoryRet")]
    assert stamps == sorted(stamps)
    assert [c.tag for c in pages[2].find("ItemInventoryRet")] == ["ListID", "TimeModified"]

    # A finished iterator is gone.
    again = one_rs(sim.process(item_query("", attrs=f' iterator="Continue" iteratorID="{iterator_id}"')))
    assert again.get("statusCode") == "3391"


def test_iterator_result_set_is_fixed_at_start(sim: QuickBooksSim) -> None:
    for i in range(5):
        sim.add_item(f"x{i}", 1)
    first = one_rs(sim.process(item_query("<MaxReturned>4</MaxReturned>", attrs=' iterator="Start"')))
    assert first.get("iteratorRemainingCount") == "3"
    sim.add_item("late", 1)  # not part of the set
    sim.adjust_quantity("redwine", -1)  # already returned; not returned again
    rest = one_rs(
        sim.process(
            item_query(
                "<MaxReturned>4</MaxReturned>", attrs=f' iterator="Continue" iteratorID="{first.get("iteratorID")}"'
            )
        )
    )
    names = [r.findtext("FullName") for r in first.findall("ItemInventoryRet") + rest.findall("ItemInventoryRet")]
    assert names == ["redwine", "whitewine", "x0", "x1", "x2", "x3", "x4"]
    assert rest.get("iteratorRemainingCount") == "0"


def test_continue_after_end_session_is_3391(sim: QuickBooksSim) -> None:
    sim.begin_session()
    first = one_rs(sim.process(item_query("<MaxReturned>1</MaxReturned>", attrs=' iterator="Start"')))
    iterator_id = first.get("iteratorID")
    assert first.get("iteratorRemainingCount") == "1"
    sim.end_session()
    sim.begin_session()
    rs = one_rs(
        sim.process(
            item_query("<MaxReturned>1</MaxReturned>", attrs=f' iterator="Continue" iteratorID="{iterator_id}"')
        )
    )
    assert (rs.get("statusCode"), rs.get("statusSeverity")) == ("3391", "Error")
    assert rs.get("statusMessage") == f'The iteratorID "{iterator_id}" is not valid.'
    assert rs.find("ItemInventoryRet") is None

    unknown = one_rs(sim.process(item_query("", attrs=' iterator="Continue" iteratorID="{nope}"')))
    assert unknown.get("statusMessage") == 'The iteratorID "{nope}" is not valid.'


def test_from_modified_date_is_inclusive_and_ignores_the_offset(sim: QuickBooksSim, clock: Clock) -> None:
    clock.now = T0 + timedelta(hours=2)
    sim.adjust_quantity("whitewine", 4)
    stamp = sim.item("whitewine").time_modified
    at = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    after = (stamp + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")

    def names(from_date: str) -> list[str]:
        rs = one_rs(sim.process(item_query(f"<FromModifiedDate>{from_date}</FromModifiedDate>")))
        return [r.findtext("FullName") for r in rs.findall("ItemInventoryRet")]

    assert names(at) == ["whitewine"]
    assert names(at + "-07:00") == ["whitewine"]
    assert names(at + "+02:00") == ["whitewine"]
    assert names("2024-05-01") == ["redwine", "whitewine"]
    empty = one_rs(sim.process(item_query(f"<FromModifiedDate>{after}</FromModifiedDate>")))
    assert empty.get("statusCode") == "1" and empty.find("ItemInventoryRet") is None

    to_rs = one_rs(sim.process(item_query(f"<ToModifiedDate>{at}</ToModifiedDate>")))
    assert len(to_rs.findall("ItemInventoryRet")) == 2
    before = (stamp - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    to_rs = one_rs(sim.process(item_query(f"<ToModifiedDate>{before}</ToModifiedDate>")))
    assert [r.findtext("FullName") for r in to_rs.findall("ItemInventoryRet")] == ["redwine"]


def test_time_modified_strictly_increases_with_a_frozen_clock(sim: QuickBooksSim) -> None:
    stamps = []
    for _ in range(3):
        sim.adjust_quantity("redwine", 1)
        stamps.append(sim.item("redwine").time_modified)
    assert stamps[0] < stamps[1] < stamps[2]
    assert len({sim.item("redwine").edit_sequence, sim.item("whitewine").edit_sequence}) == 2


def test_active_status(sim: QuickBooksSim) -> None:
    sim.edit_item("whitewine", is_active=False)

    def names(inner: str) -> list[str]:
        return [r.findtext("FullName") for r in one_rs(sim.process(item_query(inner))).findall("ItemInventoryRet")]

    assert names("") == ["redwine"]
    assert names("<ActiveStatus>ActiveOnly</ActiveStatus>") == ["redwine"]
    assert names("<ActiveStatus>All</ActiveStatus>") == ["redwine", "whitewine"]
    assert names("<ActiveStatus>InactiveOnly</ActiveStatus>") == ["whitewine"]
    rs = one_rs(sim.process(item_query("<ActiveStatus>InactiveOnly</ActiveStatus>")))
    assert rs.find("ItemInventoryRet/IsActive").text == "false"


def test_full_name_list_with_a_missing_name_is_500_warn(sim: QuickBooksSim) -> None:
    rs = one_rs(sim.process(item_query("<FullName>redwine</FullName><FullName>rose</FullName>")))
    assert (rs.get("statusCode"), rs.get("statusSeverity")) == ("500", "Warn")
    assert '"rose"' in rs.get("statusMessage")
    assert [r.findtext("FullName") for r in rs.findall("ItemInventoryRet")] == ["redwine"]


def test_item_ret_order_and_decimal_formatting(clock: Clock) -> None:
    sim = QuickBooksSim(clock=clock)
    sim.add_item("Wine", 0)
    sim.add_item("Red & Co", Decimal("2E+1"), parent="Wine", manufacturer_part_number="R<1>", price=Decimal("12.5"))
    sim.adjust_quantity("Wine:Red & Co", Decimal("-0.25"))
    response = sim.process(item_query("<FullName>Wine:Red &amp; Co</FullName>"))
    assert "R&lt;1&gt;" in response and "Red &amp; Co" in response
    ret = one_rs(response).find("ItemInventoryRet")
    tags = [c.tag for c in ret]
    expected = [
        "ListID",
        "TimeCreated",
        "TimeModified",
        "EditSequence",
        "Name",
        "FullName",
        "IsActive",
        "ParentRef",
        "Sublevel",
        "ManufacturerPartNumber",
        "SalesPrice",
        "QuantityOnHand",
        "QuantityOnSalesOrder",
    ]
    assert [t for t in tags if t in expected] == expected
    assert ret.findtext("QuantityOnHand") == "19.75"
    assert ret.findtext("ParentRef/FullName") == "Wine"
    assert ret.findtext("Sublevel") == "1"
    assert "E" not in ret.findtext("QuantityOnHand")


def test_assembly_items_have_their_own_query(clock: Clock) -> None:
    sim = QuickBooksSim(clock=clock)
    sim.add_item("gift-box", 3, kind="assembly")
    sim.add_item("bottle", 7)
    rs = one_rs(sim.process(envelope("<ItemInventoryAssemblyQueryRq/>")))
    assert [r.findtext("FullName") for r in rs.findall("ItemInventoryAssemblyRet")] == ["gift-box"]
    rs = one_rs(sim.process(envelope("<ItemInventoryQueryRq/>")))
    assert [r.findtext("FullName") for r in rs.findall("ItemInventoryRet")] == ["bottle"]
    assert one_rs(sim.process(envelope(sales_receipt("G1", ("gift-box", "1"))))).get("statusCode") == "0"
    assert qoh(sim, "gift-box") == 2


def test_paging_10000_items_does_not_rescan(clock: Clock) -> None:
    sim = QuickBooksSim(clock=clock)
    for i in range(10_000):
        sim.add_item(f"P{i:05d}", 5)

    class CountingDict(dict):
        scans = 0

        def values(self):
            CountingDict.scans += 1
            return super().values()

    sim.items = CountingDict(sim.items)
    started = time.perf_counter()
    rs = one_rs(
        sim.process(
            item_query(
                "<MaxReturned>100</MaxReturned><ActiveStatus>All</ActiveStatus>"
                "<IncludeRetElement>ListID</IncludeRetElement><IncludeRetElement>QuantityOnHand</IncludeRetElement>",
                attrs=' iterator="Start"',
            )
        )
    )
    count = len(rs)
    iterator_id = rs.get("iteratorID")
    while rs.get("iteratorRemainingCount") != "0":
        rs = one_rs(
            sim.process(
                item_query("<MaxReturned>100</MaxReturned>", attrs=f' iterator="Continue" iteratorID="{iterator_id}"')
            )
        )
        count += len(rs)
    elapsed = time.perf_counter() - started
    assert count == 10_000
    assert CountingDict.scans == 1  # the set was selected and sorted once, at Start
    assert elapsed < 20, f"100 pages of 10,000 items took {elapsed:.1f}s"


def test_transaction_query_iterator_and_response_data_include_none(sim: QuickBooksSim) -> None:
    for i in range(3):
        sim.process(envelope(sales_receipt(f"R{i}", ("redwine", "1"))))
    first = one_rs(
        sim.process(
            envelope(
                '<SalesReceiptQueryRq iterator="Start"><MaxReturned>2</MaxReturned>'
                "<IncludeRetElement>RefNumber</IncludeRetElement></SalesReceiptQueryRq>"
            )
        )
    )
    assert [r.findtext("RefNumber") for r in first] == ["R0", "R1"]
    assert first.get("iteratorRemainingCount") == "1"
    rest = one_rs(
        sim.process(
            envelope(
                f'<SalesReceiptQueryRq iterator="Continue" iteratorID="{first.get("iteratorID")}">'
                "<MaxReturned>2</MaxReturned></SalesReceiptQueryRq>"
            )
        )
    )
    assert [r.findtext("RefNumber") for r in rest] == ["R2"]
    assert rest.get("iteratorRemainingCount") == "0"

    quiet = sim.process(
        '<?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError" responseData="includeNone">'
        + sales_receipt("R9", ("redwine", "1"))
        + "</QBXMLMsgsRq></QBXML>"
    )
    rs = one_rs(quiet)
    assert rs.get("statusCode") == "0" and len(rs) == 0
    assert qoh(sim, "redwine") == 16


def test_unconvertible_date_is_3020(sim: QuickBooksSim) -> None:
    rs = one_rs(sim.process(item_query("<FromModifiedDate>2024-13-01</FromModifiedDate>")))
    assert (rs.get("statusCode"), rs.get("statusSeverity")) == ("3020", "Error")


# --------------------------------------------------------------------------- editions, company file


def test_quickbooks_pro_answers_3250_for_assemblies_and_sales_orders() -> None:
    pro = QuickBooksSim(edition="pro")
    pro.add_item("redwine", 3)
    with pytest.raises(ValueError, match="no inventory assemblies"):
        pro.add_item("kit", 1, kind="assembly")
    out = pro.process(
        envelope(
            '<ItemInventoryQueryRq requestID="1"><MaxReturned>5</MaxReturned></ItemInventoryQueryRq>'
            '<ItemInventoryAssemblyQueryRq requestID="2" iterator="Start"><MaxReturned>5</MaxReturned></ItemInventoryAssemblyQueryRq>'
            '<SalesOrderQueryRq requestID="3"><RefNumber>1</RefNumber></SalesOrderQueryRq>',
            on_error="continueOnError",
        )
    )
    assert 'requestID="1" statusCode="0"' in out
    assert out.count('statusCode="3250"') == 2
    assert "not available in this version of QuickBooks" in out
    premier = QuickBooksSim(edition="premier")
    out = premier.process(envelope('<ItemInventoryAssemblyQueryRq requestID="2"></ItemInventoryAssemblyQueryRq>'))
    assert 'statusCode="1"' in out  # no assemblies yet, but the list exists
    with pytest.raises(ValueError):
        QuickBooksSim(edition="basic")


def test_host_query_response_names_the_company_and_the_file_id_stamped_under_an_owner() -> None:
    qb = QuickBooksSim(edition="pro", company_name="Shop & Co", company_file=r"C:\QB\Shop.QBW")
    qb.stamp_file_id("{OWNER}", "{FILE-1}")
    qb.stamp_file_id("{OWNER}", "{FILE-2}")  # stamped once: a second contact does not change it
    root = etree.fromstring(qb.host_query_response().encode())
    assert root.findtext(".//HostRet/ProductName").startswith("QuickBooks Pro")
    assert root.findtext(".//CompanyRet/CompanyName") == "Shop & Co"
    ext = root.find(".//CompanyRet/DataExtRet")
    assert ext.findtext("OwnerID") == "{OWNER}" and ext.findtext("DataExtName") == "FileID"
    assert ext.findtext("DataExtValue") == "{FILE-1}"
    assert [rs.tag for rs in root.find("QBXMLMsgsRs")] == ["HostQueryRs", "CompanyQueryRs", "PreferencesQueryRs"]
