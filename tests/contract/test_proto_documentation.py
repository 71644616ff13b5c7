"""Every element of the contract (protos/carbon/**) carries a comment an integrator can act on.

The protos are compiled with their source info (grpc_tools.protoc --include_source_info), so comments are read as
protoc attaches them. Only a leading comment counts: it is what buf's COMMENT_* lint rules, mypy-protobuf's .pyi
docstrings and documentation generators take; a trailing or detached comment is easily lost.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parents[2] / "protos"
WELL_KNOWN = Path(protoc.__file__).parent / "_proto"

# Field numbers of descriptor.proto, as SourceCodeInfo paths spell an element's position in its file.
FILE_MESSAGES, FILE_ENUMS, FILE_SERVICES = 4, 5, 6
MESSAGE_FIELDS, MESSAGE_NESTED, MESSAGE_ENUMS, MESSAGE_ONEOFS = 2, 3, 4, 8
ENUM_VALUES = 2
SERVICE_METHODS = 2
# A request field's comment opens with one of these, so a caller knows what it must send.
PRESENCE_WORDS = ("Required", "Optional", "Ignored")
Comments = Mapping[tuple[int, ...], str]


@dataclass(frozen=True)
class Element:
    kind: str  # service, method, message, field, oneof, enum or enum value
    name: str  # full name, e.g. carbon.ingest.v1.Event.event_id
    comment: str  # the leading comment, stripped ("" when there is none)
    parent: str = ""  # the full name of the message, enum or service it is declared in
    in_oneof: bool = False  # a field that is a member of a oneof (the oneof's comment says whether one is required)


def compile_with_comments(root: Path, out: Path) -> descriptor_pb2.FileDescriptorSet:
    """The descriptors of every .proto under root, with their source info (comments and positions)."""
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*.proto"))
    status = protoc.main(
        ["protoc", f"-I{root}", f"-I{WELL_KNOWN}", "--include_source_info", f"--descriptor_set_out={out}", *files]
    )
    assert status == 0, f"protoc could not compile the protos under {root}"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def elements(descriptors: descriptor_pb2.FileDescriptorSet) -> Iterator[Element]:
    """Every service, method, message, field, oneof, enum and enum value, with its leading comment."""
    for file in descriptors.file:
        comments = {
            tuple(location.path): location.leading_comments.strip() for location in file.source_code_info.location
        }
        for index, service in enumerate(file.service):
            path = (FILE_SERVICES, index)
            name = f"{file.package}.{service.name}"
            yield Element("service", name, comments.get(path, ""))
            for position, method in enumerate(service.method):
                yield Element(
                    "method", f"{name}.{method.name}", comments.get((*path, SERVICE_METHODS, position), ""), name
                )
        for index, enum in enumerate(file.enum_type):
            yield from _enum(enum, file.package, (FILE_ENUMS, index), comments)
        for index, message in enumerate(file.message_type):
            yield from _message(message, file.package, (FILE_MESSAGES, index), comments)


def _enum(
    enum: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...], comments: Comments
) -> Iterator[Element]:
    name = f"{scope}.{enum.name}"
    yield Element("enum", name, comments.get(path, ""), scope)
    for index, value in enumerate(enum.value):
        yield Element("enum value", f"{name}.{value.name}", comments.get((*path, ENUM_VALUES, index), ""), name)


def _message(
    message: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...], comments: Comments
) -> Iterator[Element]:
    if message.options.map_entry:  # the synthetic entry type of a map field: the map field carries the comment
        return
    name = f"{scope}.{message.name}"
    yield Element("message", name, comments.get(path, ""), scope)
    for index, field in enumerate(message.field):
        comment = comments.get((*path, MESSAGE_FIELDS, index), "")
        in_oneof = field.HasField("oneof_index") and not field.proto3_optional
        yield Element("field", f"{name}.{field.name}", comment, name, in_oneof)
    for index, oneof in enumerate(message.oneof_decl):
        members = [field for field in message.field if field.HasField("oneof_index") and field.oneof_index == index]
        if all(field.proto3_optional for field in members):  # synthetic: `optional` declares no oneof of its own
            continue
        yield Element("oneof", f"{name}.{oneof.name}", comments.get((*path, MESSAGE_ONEOFS, index), ""), name)
    for index, nested in enumerate(message.nested_type):
        yield from _message(nested, name, (*path, MESSAGE_NESTED, index), comments)
    for index, enum in enumerate(message.enum_type):
        yield from _enum(enum, name, (*path, MESSAGE_ENUMS, index), comments)


def undocumented(descriptors: descriptor_pb2.FileDescriptorSet) -> list[str]:
    return [f"{element.kind} {element.name}" for element in elements(descriptors) if not element.comment]


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


def test_every_service_method_message_field_and_enum_value_of_the_contract_is_documented(tmp_path: Path) -> None:
    descriptors = compile_with_comments(PROTOS, tmp_path / "contract.binpb")

    missing = undocumented(descriptors)

    assert not missing, _report(missing, "elements of protos/ have no leading comment")


def test_every_request_field_says_whether_it_is_required(tmp_path: Path) -> None:
    descriptors = compile_with_comments(PROTOS, tmp_path / "contract.binpb")

    unclear = [
        f"{element.name}: {element.comment.splitlines()[0]!r}"
        for element in elements(descriptors)
        if (element.kind == "oneof" or (element.kind == "field" and not element.in_oneof))
        and element.parent.endswith("Request")
        and not element.comment.startswith(PRESENCE_WORDS)
    ]

    assert not unclear, _report(unclear, f"request fields do not open with one of {PRESENCE_WORDS}")


def test_every_method_states_its_idempotency_and_its_errors(tmp_path: Path) -> None:
    descriptors = compile_with_comments(PROTOS, tmp_path / "contract.binpb")

    incomplete = [
        f"{element.name} lacks a line starting {label!r}"
        for element in elements(descriptors)
        if element.kind == "method"
        for label in ("Idempotency:", "Errors:")
        if not any(line.strip().startswith(label) for line in element.comment.splitlines())
    ]

    assert not incomplete, _report(incomplete, "method comments are incomplete")


PROBE = """syntax = "proto3";

package carbon.probe.v1;

// A documented service.
service ProbeService {
  // A documented method.
  rpc GetProbe(GetProbeRequest) returns (GetProbeResponse);
  rpc AddedWithoutAComment(GetProbeRequest) returns (GetProbeResponse);
}

// A documented enum.
enum ProbeKind {
  // A documented value.
  PROBE_KIND_UNSPECIFIED = 0;
  PROBE_KIND_UNDOCUMENTED = 1;
}

// A documented message.
message GetProbeRequest {
  // Required. A documented field.
  string name = 1;
  string trailing_only = 2; // a trailing comment does not document a field
  map<string, string> labels = 3;
  // A documented oneof.
  oneof choice {
    // A documented member.
    string first = 4;
    string second = 5;
  }
  oneof undocumented_choice {
    // A documented member.
    string third = 6;
  }
}

message GetProbeResponse {
  // A documented field.
  ProbeKind kind = 1;
}
"""


def test_the_check_names_each_undocumented_element_and_only_those(tmp_path: Path) -> None:
    root = tmp_path / "protos"
    (root / "carbon/probe/v1").mkdir(parents=True)
    (root / "carbon/probe/v1/probe.proto").write_text(PROBE, encoding="utf-8")

    missing = undocumented(compile_with_comments(root, tmp_path / "probe.binpb"))

    assert missing == [
        "method carbon.probe.v1.ProbeService.AddedWithoutAComment",
        "enum value carbon.probe.v1.ProbeKind.PROBE_KIND_UNDOCUMENTED",
        "field carbon.probe.v1.GetProbeRequest.trailing_only",
        "field carbon.probe.v1.GetProbeRequest.labels",
        "field carbon.probe.v1.GetProbeRequest.second",
        "oneof carbon.probe.v1.GetProbeRequest.undocumented_choice",
        "message carbon.probe.v1.GetProbeResponse",
    ]


def test_a_field_added_to_the_contract_without_a_comment_fails_the_check(tmp_path: Path) -> None:
    root = tmp_path / "protos"
    shutil.copytree(PROTOS, root)
    proto = root / "carbon/ingest/v1/ingest_service.proto"
    text = proto.read_text(encoding="utf-8")
    assert text.count("message Event {\n") == 1
    proto.write_text(
        text.replace("message Event {\n", "message Event {\n  string added_later = 99;\n"), encoding="utf-8"
    )

    missing = undocumented(compile_with_comments(root, tmp_path / "contract.binpb"))

    assert missing == ["field carbon.ingest.v1.Event.added_later"]
