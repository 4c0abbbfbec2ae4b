"""qbXML builders validate against Intuit's schema; responses parse leniently and fast."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from connex_tui.soap.qbxml import (
    QBXML_VERSION,
    QBXMLParseError,
    TxnDoc,
    TxnLine,
    classify_status,
    item_query_rq,
    memo_for,
    memo_marker,
    message_set,
    negotiate_version,
    parse_response,
    qb_text,
    ref_number_for,
    txn_add_rq,
    txn_query_by_ref_rq,
)
from connex_tui.specdir import qbxml_schema

TXN_KINDS = ["sales_receipt", "invoice", "sales_order", "credit_memo"]
PREFIX = {
    "sales_receipt": "SalesReceipt",
    "invoice": "Invoice",
    "sales_order": "SalesOrder",
    "credit_memo": "CreditMemo",
}
ITEM_RQ = {"inventory": "ItemInventoryQueryRq", "assembly": "ItemInventoryAssemblyQueryRq"}


@pytest.fixture(scope="module")
def schema() -> Any:
    parsed = qbxml_schema()
    if parsed is None:
        pytest.skip(
            "qbXML schema not found: neither CONNEX_QBXML_SPEC_DIR nor ../shared/spec exists (with qbxmlops130.xsd)"
        )
    return parsed


def validate(schema: Any, xml: str) -> etree._Element:
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?><?qbxml version="')
    root = etree.fromstring(xml.encode("utf-8"))
    schema.assertValid(root)
    return root


def the_request(root: etree._Element) -> etree._Element:
    msgs = root.find("QBXMLMsgsRq")
    assert msgs is not None and len(msgs) == 1
    return msgs[0]


def simple_doc(**changes: Any) -> TxnDoc:
    fields: dict[str, Any] = dict(
        ref_number="1001",
        memo=memo_for("1001", "5001"),
        customer="Web Customer",
        lines=(
            TxnLine("Widgets:WID-100", Decimal("2"), Decimal("19.95"), "Blue widget"),
            TxnLine("Shipping", Decimal("1")),
        ),
        txn_date=date(2024, 5, 2),
    )
    fields.update(changes)
    return TxnDoc(**fields)


# --- envelope ------------------------------------------------------------------------------


def test_message_set_shape() -> None:
    xml = message_set(["<A/>", "<B/>"], "12.0", "stopOnError")
    assert xml == (
        '<?xml version="1.0" encoding="utf-8"?><?qbxml version="12.0"?>'
        '<QBXML><QBXMLMsgsRq onError="stopOnError"><A/><B/></QBXMLMsgsRq></QBXML>'
    )
    assert message_set([]).endswith('<QBXMLMsgsRq onError="continueOnError"></QBXMLMsgsRq></QBXML>')
    assert f'<?qbxml version="{QBXML_VERSION}"?>' in message_set([])


@pytest.mark.parametrize("version,on_error", [('13.0"?><x', "stopOnError"), ("13.0", "panic")])
def test_message_set_refuses_bad_arguments(version: str, on_error: str) -> None:
    with pytest.raises(ValueError):
        message_set([], version, on_error)


# --- builders validate ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", TXN_KINDS)
def test_txn_add_validates_in_schema_order(schema: Any, kind: str) -> None:
    root = validate(schema, message_set([txn_add_rq(kind, simple_doc(), "ord-1001-a1")], on_error="stopOnError"))
    rq = the_request(root)
    prefix = PREFIX[kind]
    assert rq.tag == f"{prefix}AddRq" and rq.get("requestID") == "ord-1001-a1"
    add = rq.find(f"{prefix}Add")
    assert [c.tag for c in add] == [
        "CustomerRef",
        "TxnDate",
        "RefNumber",
        "Memo",
        f"{prefix}LineAdd",
        f"{prefix}LineAdd",
    ]
    assert add.findtext("CustomerRef/FullName") == "Web Customer"
    assert add.findtext("TxnDate") == "2024-05-02"
    assert add.findtext("RefNumber") == "1001"
    assert add.findtext("Memo") == "Web order #1001 [cx:5001]"
    first, second = add.findall(f"{prefix}LineAdd")
    assert [c.tag for c in first] == ["ItemRef", "Desc", "Quantity", "Rate"]
    assert first.findtext("ItemRef/FullName") == "Widgets:WID-100"
    assert (first.findtext("Quantity"), first.findtext("Rate")) == ("2", "19.95")
    assert [c.tag for c in second] == ["ItemRef", "Quantity"]
    assert [e.text for e in rq.findall("IncludeRetElement")] == ["TxnID", "EditSequence", "RefNumber", "Memo"]


@pytest.mark.parametrize("kind", TXN_KINDS)
def test_txn_add_without_date_validates(schema: Any, kind: str) -> None:
    root = validate(schema, message_set([txn_add_rq(kind, simple_doc(txn_date=None), "r")]))
    assert the_request(root).find(f"{PREFIX[kind]}Add/TxnDate") is None


@pytest.mark.parametrize("kind", TXN_KINDS)
def test_txn_query_by_ref_validates(schema: Any, kind: str) -> None:
    xml = message_set([txn_query_by_ref_rq(kind, ["1001", "W12345ABCDE", "1001"], "chk-1")])
    rq = the_request(validate(schema, xml))
    assert rq.tag == f"{PREFIX[kind]}QueryRq" and rq.get("requestID") == "chk-1"
    assert [e.text for e in rq.findall("RefNumber")] == ["1001", "W12345ABCDE"]
    assert [e.text for e in rq.findall("IncludeRetElement")] == ["TxnID", "RefNumber", "Memo", "TxnDate"]


def test_txn_query_needs_a_ref_number() -> None:
    with pytest.raises(ValueError):
        txn_query_by_ref_rq("invoice", [], "x")
    with pytest.raises(ValueError):
        txn_query_by_ref_rq("invoice", ["", "\x00"], "x")


@pytest.mark.parametrize("kind", ["inventory", "assembly"])
@pytest.mark.parametrize("from_modified", [None, "2024-05-01T08:30:01"])
@pytest.mark.parametrize("iterator", ["Start", "Continue"])
def test_item_query_validates(schema: Any, kind: str, from_modified: str | None, iterator: str) -> None:
    iterator_id = "{84ff5521-205d-46b6-9d44-7b6b9acb7165}" if iterator == "Continue" else None
    rq_xml = item_query_rq(
        kind, "inv-7-1", max_returned=25, from_modified=from_modified, iterator=iterator, iterator_id=iterator_id
    )
    rq = the_request(validate(schema, message_set([rq_xml])))
    assert rq.tag == ITEM_RQ[kind]
    assert rq.get("requestID") == "inv-7-1" and rq.get("iterator") == iterator
    assert rq.get("iteratorID") == iterator_id
    expected = ["MaxReturned", "ActiveStatus"] + (["FromModifiedDate"] if from_modified else [])
    assert [c.tag for c in rq][: len(expected)] == expected
    assert rq.findtext("MaxReturned") == "25" and rq.findtext("ActiveStatus") == "All"
    assert rq.findtext("FromModifiedDate") == from_modified
    assert [e.text for e in rq.findall("IncludeRetElement")] == [
        "ListID",
        "TimeModified",
        "EditSequence",
        "Name",
        "FullName",
        "IsActive",
        "ManufacturerPartNumber",
        "QuantityOnHand",
    ]


def test_item_query_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        item_query_rq("inventory", "r", iterator="Continue")  # no iteratorID
    with pytest.raises(ValueError):
        item_query_rq("inventory", "r", max_returned=0)
    with pytest.raises(ValueError):
        item_query_rq("inventory", "r", from_modified="yesterday")
    with pytest.raises(ValueError):
        item_query_rq("service", "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        item_query_rq("inventory", 'a"b\n')


# --- nasty text -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TXN_KINDS)
def test_nasty_text_validates_and_reads_back(schema: Any, kind: str) -> None:
    long_memo = "Fish & Chips <b>\"quoted\" 'single'</b> " + "x" * 5000
    item_40 = "Category:" + "N" * 31  # 40 characters
    assert len(item_40) == 40
    doc = TxnDoc(
        ref_number="A&B<1>\"'",
        memo=long_memo,
        customer="O\u2019Brien \u201cThe Boss\u201d & Sons \u2014 Ngụy Như 北京 🎉",
        lines=(
            TxnLine(item_40, Decimal("1.123456"), Decimal("1E+3"), "Emoji 🎉👍🏽 CJK 漢字 smart \u2018x\u2019 café"),
            TxnLine("A&B <Tools>", Decimal("-3"), Decimal("0.10")),
        ),
    )
    xml = message_set([txn_add_rq(kind, doc, 'r&<"1')])
    assert xml.isascii()  # non-ASCII Latin-1 goes out as numeric references
    rq = the_request(validate(schema, xml))
    assert rq.get("requestID") == 'r&<"1'
    add = rq.find(f"{PREFIX[kind]}Add")
    assert add.findtext("RefNumber") == "A&B<1>\"'"
    memo = add.findtext("Memo")
    assert len(memo) == 4095 and memo == long_memo[:4095]
    assert add.findtext("CustomerRef/FullName") == 'O\'Brien "The Boss" & Sons - Nguy Nhu ?? ?'
    first, second = add.findall(f"{PREFIX[kind]}LineAdd")
    assert first.findtext("ItemRef/FullName") == item_40
    assert first.findtext("Desc") == "Emoji ??? CJK ?? smart 'x' café"
    assert first.findtext("Quantity") == "1.12346"
    assert first.findtext("Rate") == "1000"
    assert second.findtext("ItemRef/FullName") == "A&B <Tools>"
    assert (second.findtext("Quantity"), second.findtext("Rate")) == ("-3", "0.1")


def test_long_fields_are_cut_to_their_limits(schema: Any) -> None:
    doc = simple_doc(
        ref_number="R" * 30,
        customer="C" * 300,
        lines=(TxnLine("I" * 300, Decimal(1), desc="D" * 5000),),
    )
    add = the_request(validate(schema, message_set([txn_add_rq("invoice", doc, "r")]))).find("InvoiceAdd")
    assert add.findtext("RefNumber") == "R" * 11
    assert add.findtext("CustomerRef/FullName") == "C" * 209
    assert add.findtext("InvoiceLineAdd/ItemRef/FullName") == "I" * 159
    assert add.findtext("InvoiceLineAdd/Desc") == "D" * 4095


@pytest.mark.parametrize(
    "value,text",
    [
        (Decimal("2"), "2"),
        (Decimal("2.50000"), "2.5"),
        (Decimal("0.000004"), "0"),
        (Decimal("-0.000001"), "0"),
        (Decimal("1.000005"), "1.00001"),
        (Decimal("1E+5"), "100000"),
        (Decimal("9999999999.99999"), "9999999999.99999"),
        (3, "3"),
    ],
)
def test_quantity_formatting(value: Decimal, text: str) -> None:
    doc = simple_doc(lines=(TxnLine("X", value),))
    add = etree.fromstring(message_set([txn_add_rq("sales_receipt", doc, "r")]).encode())
    assert add.findtext(".//Quantity") == text


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("12345678901"), "1"])
def test_bad_numbers_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        txn_add_rq("sales_receipt", simple_doc(lines=(TxnLine("X", value),)), "r")


def test_txn_add_refuses_empty_docs() -> None:
    with pytest.raises(ValueError):
        txn_add_rq("invoice", simple_doc(lines=()), "r")
    with pytest.raises(ValueError):
        txn_add_rq("invoice", simple_doc(customer="\x01"), "r")
    with pytest.raises(ValueError):
        txn_add_rq("invoice", simple_doc(lines=(TxnLine("", Decimal(1)),)), "r")
    with pytest.raises(ValueError):
        txn_add_rq("refund", simple_doc(), "r")  # type: ignore[arg-type]


# --- ref numbers, memos ---------------------------------------------------------------------


def test_ref_number_for() -> None:
    assert ref_number_for("1001", "5001") == "1001"
    assert ref_number_for("12345678901", "x") == "12345678901"
    long_a = ref_number_for("WEB-2024-000123456", "store-order-1")
    assert len(long_a) == 11 and long_a.startswith("W") and long_a.isalnum()
    assert ref_number_for("WEB-2024-000123456", "store-order-1") == long_a
    assert ref_number_for("WEB-2024-000123456", "store-order-2") != long_a
    assert ref_number_for("", "store-order-1") == long_a  # nothing usable -> the code
    assert len({ref_number_for("X" * 20, str(i)) for i in range(5000)}) == 5000
    assert ref_number_for("№ 1", "s") == "No 1"  # NFKD applies before the length check


def test_memo_carries_the_marker() -> None:
    assert memo_marker("5001") == "[cx:5001]"
    memo = memo_for("1001", "5001")
    assert memo == "Web order #1001 [cx:5001]"
    assert memo_marker("5001") in memo
    huge = memo_for("9" * 10000, "5001")
    assert len(huge) <= 4095 and huge.endswith("[cx:5001]")
    assert qb_text(huge, 4095) == huge
    # ids that would not survive QuickBooks unchanged get a hashed marker that still differs
    assert memo_marker("店1") != memo_marker("商1")
    assert qb_text(memo_marker("店1"), 4095) == memo_marker("店1")


# --- small functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "major,minor,expected",
    [
        ("13", "0", "13.0"),
        ("12", "0", "12.0"),
        ("14", "0", "13.0"),
        (13, 0, "13.0"),
        (8, 1, "8.1"),
        ("12", " 1 ", "12.1"),
        ("", "", QBXML_VERSION),
        (None, None, QBXML_VERSION),
        ("13", None, QBXML_VERSION),
        ("x", "0", QBXML_VERSION),
        ("-1", "0", QBXML_VERSION),
        ("0", "0", QBXML_VERSION),
        ("13.0", "0", QBXML_VERSION),
        (True, 0, QBXML_VERSION),
    ],
)
def test_negotiate_version(major: object, minor: object, expected: str) -> None:
    assert negotiate_version(major, minor) == expected


@pytest.mark.parametrize(
    "value,max_len,expected",
    [
        ("plain", 10, "plain"),
        ("\u201csmart\u201d \u2018quotes\u2019", 100, "\"smart\" 'quotes'"),
        ("en\u2013dash em\u2014dash minus\u2212", 100, "en-dash em-dash minus-"),
        ("Ngụy Như", 100, "Nguy Nhu"),
        ("café naïve Ærø ß", 100, "café naïve Ærø ß"),  # Latin-1 is kept
        ("cafe\u0301", 100, "café"),  # decomposed input recombines
        ("北京 🎉", 100, "?? ?"),
        ("a\x00b\x07c\x7fd\x85e", 100, "abcde"),
        ("tab\tnew\nline\r\nend\r", 100, "tab\tnew\nline\nend\n"),
        ("  spaced   out  ", 100, "  spaced   out  "),
        ("A&B <c>", 100, "A&B <c>"),  # escaping is the writer's job
        ("abcdef", 3, "abc"),
        ("\ufb01ne \u2122 \u2026", 100, "fine TM ..."),
        ("zero\u200bwidth\ufe0f", 100, "zerowidth"),
        ("", 5, ""),
    ],
)
def test_qb_text(value: str, max_len: int, expected: str) -> None:
    assert qb_text(value, max_len) == expected


def test_qb_text_output_is_latin1() -> None:
    text = qb_text("".join(chr(c) for c in range(0x20, 0x3000, 7)), 10000)
    text.encode("latin-1")


@pytest.mark.parametrize(
    "code,expected",
    [
        (0, "ok"),
        (1, "no_match"),
        (2, "ok"),
        (499, "ok"),
        (500, "warning"),
        (530, "warning"),
        (999, "warning"),
        (1000, "error"),
        (3100, "error"),
        (3140, "missing_reference"),
        (3169, "error"),
        (3170, "locked"),
        (3175, "locked"),
        (3180, "locked"),
        (3181, "error"),
        (3200, "error"),
        (3391, "iterator_invalid"),
        (-1, "error"),
    ],
)
def test_classify_status(code: int, expected: str) -> None:
    assert classify_status(code) == expected


# --- parse_response -------------------------------------------------------------------------

MULTI = """<?xml version="1.0" ?>
<QBXML>
<QBXMLMsgsRs>
<SalesReceiptAddRs requestID="ord-1" statusCode="0" statusSeverity="Info" statusMessage="Status OK">
<SalesReceiptRet>
<TxnID>1A2B-1714650000</TxnID>
<EditSequence>1714650000</EditSequence>
<RefNumber>1001</RefNumber>
<Memo>Web order #1001 [cx:5001] &amp; more</Memo>
</SalesReceiptRet>
<FutureThing>tolerated</FutureThing>
</SalesReceiptAddRs>
<!-- a comment -->
<CustomerAddRs requestID="cust-2" statusCode="3100" statusSeverity="Error" statusMessage="The name &quot;x&quot; of the list element is already in use." />
<ItemInventoryQueryRs requestID="inv-3" statusCode="0" statusSeverity="Info" statusMessage="Status OK" iteratorRemainingCount="12" iteratorID="{84ff5521-205d-46b6-9d44-7b6b9acb7165}" retCount="2">
<ItemInventoryRet>
<ListID>80000001-1</ListID>
<Name>redwine</Name>
<FullName>Wine:redwine</FullName>
<IsActive>true</IsActive>
<ParentRef><ListID>80000000-1</ListID><FullName>Wine</FullName></ParentRef>
<QuantityOnHand>15</QuantityOnHand>
<DataExtRet><OwnerID>0</OwnerID><DataExtName>Color</DataExtName><DataExtValue>Red</DataExtValue></DataExtRet>
<DataExtRet><OwnerID>0</OwnerID><DataExtName>Size</DataExtName><DataExtValue>L</DataExtValue></DataExtRet>
<SalesDesc/>
<NewerEnumField>SomethingFromV16</NewerEnumField>
</ItemInventoryRet>
<ItemInventoryRet><ListID>80000002-1</ListID><Name>white</Name></ItemInventoryRet>
</ItemInventoryQueryRs>
<InvoiceQueryRs requestID="chk-4" statusCode="1" statusSeverity="Info" statusMessage="A query request did not find a matching object in QuickBooks" />
<ItemQueryRs requestID="5" statusCode="530" statusSeverity="Warn" />
</QBXMLMsgsRs>
</QBXML>
"""


def test_parse_multi_response() -> None:
    responses = parse_response(MULTI)
    assert [r.name for r in responses] == [
        "SalesReceiptAddRs",
        "CustomerAddRs",
        "ItemInventoryQueryRs",
        "InvoiceQueryRs",
        "ItemQueryRs",
    ]
    add, cust, inv, none, warn = responses
    assert (add.request_id, add.status_code, add.severity, add.message) == ("ord-1", 0, "Info", "Status OK")
    assert add.rets == [
        {
            "TxnID": "1A2B-1714650000",
            "EditSequence": "1714650000",
            "RefNumber": "1001",
            "Memo": "Web order #1001 [cx:5001] & more",
        }
    ]
    assert add.iterator_id is None and add.iterator_remaining is None
    assert cust.status_code == 3100 and cust.severity == "Error"
    assert cust.message == 'The name "x" of the list element is already in use.'
    assert cust.rets == []
    assert inv.iterator_id == "{84ff5521-205d-46b6-9d44-7b6b9acb7165}" and inv.iterator_remaining == 12
    first, second = inv.rets
    assert first["ParentRef"] == {"ListID": "80000000-1", "FullName": "Wine"}
    assert first["QuantityOnHand"] == "15" and first["SalesDesc"] == ""
    assert first["NewerEnumField"] == "SomethingFromV16"
    assert first["DataExtRet"] == [
        {"OwnerID": "0", "DataExtName": "Color", "DataExtValue": "Red"},
        {"OwnerID": "0", "DataExtName": "Size", "DataExtValue": "L"},
    ]
    assert second == {"ListID": "80000002-1", "Name": "white"}
    assert classify_status(none.status_code) == "no_match"
    assert (warn.request_id, warn.status_code, warn.severity, warn.message) == ("5", 530, "Warn", "")


def test_parse_bytes_and_bare_msgs_rs() -> None:
    xml = b'<QBXMLMsgsRs><ItemQueryRs statusCode="0" statusSeverity="Info"/></QBXMLMsgsRs>'
    (only,) = parse_response(xml)
    assert only.request_id is None and only.status_code == 0
    assert parse_response("<QBXML><QBXMLMsgsRs/></QBXML>") == []


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "<QBXML><QBXMLMsgsRs>",
        "not xml at all",
        '<?xml version="1.0"?><!DOCTYPE QBXML [<!ENTITY x "boom">]><QBXML><QBXMLMsgsRs>'
        '<ItemQueryRs statusCode="0" statusMessage="&x;"/></QBXMLMsgsRs></QBXML>',
        '<?xml version="1.0"?><!DOCTYPE QBXML SYSTEM "file:///etc/passwd"><QBXML><QBXMLMsgsRs/></QBXML>',
        "<Other/>",
        "<QBXML><Nothing/></QBXML>",
    ],
)
def test_parse_refuses_bad_documents(payload: str) -> None:
    with pytest.raises(QBXMLParseError):
        parse_response(payload)


def test_missing_status_code_names_the_element() -> None:
    xml = '<QBXML><QBXMLMsgsRs><ItemQueryRs statusCode="0"/><InvoiceAddRs requestID="9"/></QBXMLMsgsRs></QBXML>'
    with pytest.raises(QBXMLParseError, match="InvoiceAddRs.*statusCode"):
        parse_response(xml)


@pytest.mark.parametrize("value", ["", "zero", "1.5", "1_0"])
def test_non_integer_status_code_names_the_element(value: str) -> None:
    xml = f'<QBXML><QBXMLMsgsRs><CustomerQueryRs statusCode="{value}"/></QBXMLMsgsRs></QBXML>'
    with pytest.raises(QBXMLParseError, match="CustomerQueryRs"):
        parse_response(xml)


def test_parse_ten_thousand_items() -> None:
    count = 10_000
    parts = [
        '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs>'
        '<ItemInventoryQueryRs requestID="inv-1" statusCode="0" statusSeverity="Info" statusMessage="Status OK" '
        f'iteratorRemainingCount="0" iteratorID="{{aaaa}}" retCount="{count}">'
    ]
    filler = "Long sales description for padding the response to a realistic size. " * 8
    for i in range(count):
        parts.append(
            "<ItemInventoryRet>"
            f"<ListID>8000{i:04X}-1714650000</ListID><TimeCreated>2024-05-01T08:30:01-05:00</TimeCreated>"
            f"<TimeModified>2024-05-02T09:00:{i % 60:02d}-05:00</TimeModified><EditSequence>{1714650000 + i}</EditSequence>"
            f"<Name>SKU-{i:05d}</Name><FullName>Cat {i % 7}:SKU-{i:05d}</FullName><IsActive>true</IsActive>"
            f"<ParentRef><ListID>7000000{i % 7}-1</ListID><FullName>Cat {i % 7}</FullName></ParentRef>"
            f"<Sublevel>1</Sublevel><ManufacturerPartNumber>MPN-{i}</ManufacturerPartNumber>"
            "<SalesTaxCodeRef><ListID>1-1</ListID><FullName>Tax</FullName></SalesTaxCodeRef>"
            f"<SalesDesc>{filler}</SalesDesc><SalesPrice>{i}.95</SalesPrice>"
            "<IncomeAccountRef><ListID>2-1</ListID><FullName>Sales</FullName></IncomeAccountRef>"
            "<COGSAccountRef><ListID>3-1</ListID><FullName>COGS</FullName></COGSAccountRef>"
            "<AssetAccountRef><ListID>4-1</ListID><FullName>Inventory Asset</FullName></AssetAccountRef>"
            f"<QuantityOnHand>{i * 3}</QuantityOnHand><AverageCost>1.5</AverageCost>"
            "<QuantityOnOrder>0</QuantityOnOrder><QuantityOnSalesOrder>0</QuantityOnSalesOrder>"
            "</ItemInventoryRet>"
        )
    parts.append("</ItemInventoryQueryRs></QBXMLMsgsRs></QBXML>")
    xml = "".join(parts).encode("utf-8")
    assert len(xml) > 9_000_000

    (response,) = parse_response(xml)
    assert response.status_code == 0 and response.iterator_remaining == 0
    assert len(response.rets) == count
    first, last = response.rets[0], response.rets[-1]
    assert first["ListID"] == "80000000-1714650000" and first["Name"] == "SKU-00000"
    assert first["QuantityOnHand"] == "0" and first["ParentRef"] == {"ListID": "70000000-1", "FullName": "Cat 0"}
    assert last["ListID"] == f"8000{count - 1:04X}-1714650000" and last["FullName"] == "Cat 3:SKU-09999"
    assert last["QuantityOnHand"] == str((count - 1) * 3) and last["EditSequence"] == str(1714650000 + count - 1)


# --------------------------------------------------------------------------- transactions that move stock


def test_transaction_scan_and_read_by_list_id_validate_and_name_what_they_return(schema) -> None:
    from connex_tui.soap.qbxml import TXN_SOURCES, item_query_by_list_id_rq, touched_list_ids, txn_changes_rq

    requests = [
        txn_changes_rq(s, f"t{n}", from_modified="2026-11-27T10:00:05-07:00", max_returned=50)
        for n, s in enumerate(TXN_SOURCES)
    ]
    requests.append(
        txn_changes_rq(TXN_SOURCES[0], "c", from_modified="2026-11-27", iterator="Continue", iterator_id="{a}")
    )
    requests.append(item_query_by_list_id_rq("inventory", "l", ["80000001-1714552201", "80000001-1714552201", "8-1"]))
    schema.assertValid(etree.fromstring(message_set(requests).encode()))
    assert requests[-1].count("<ListID>") == 2  # duplicates sent once
    assert "<IncludeRetElement>QuantityOnHand</IncludeRetElement>" in requests[-1]
    for bad in ([], "80000001-1", ["x" * 37], ["a b"]):
        with pytest.raises(ValueError):
            item_query_by_list_id_rq("inventory", "l", bad)
    with pytest.raises(ValueError):
        txn_changes_rq(TXN_SOURCES[0], "t", from_modified="yesterday")

    sources = {s.qb_name: s for s in TXN_SOURCES}
    receipt = {
        "TxnID": "1-1",
        "SalesReceiptLineRet": [
            {"ItemRef": {"ListID": "80000001-1", "FullName": "a"}},
            {"ItemRef": {"FullName": "no id"}},
        ],
        "SalesReceiptLineGroupRet": {"SalesReceiptLineRet": {"ItemRef": {"ListID": "80000002-1"}}},
    }
    assert touched_list_ids(receipt, sources["SalesReceipt"]) == {"80000001-1", "80000002-1"}
    build = {
        "ItemInventoryAssemblyRef": {"ListID": "8000000A-1"},
        "ComponentItemLineRet": [
            {"ItemRef": {"ListID": "8000000B-1"}},
            "junk",
            {"ItemRef": ["x", {"ListID": "bad id!"}]},
        ],
    }
    assert touched_list_ids(build, sources["BuildAssembly"]) == {"8000000A-1", "8000000B-1"}
