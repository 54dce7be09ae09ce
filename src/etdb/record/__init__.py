"""OIP 0.4.2 Research-Tomogram records: model, wire codec, signatures, multipart.

``etdb.record`` depends only on the standard library, pydantic and coincurve, so the indexer,
publisher, API and CLI can all share it. Typical use::

    from etdb.record import decode, verify_publish
    msg = decode(flo_data)                  # Publish | Edit | Deactivate, or a RecordError
    result = verify_publish(msg.artifact)   # VerifyResult(valid, address, reason, ...)
"""

from etdb.record.decoding import decode
from etdb.record.errors import (
    MultipartError,
    PatchError,
    RecordError,
    ValidationError,
    WireFormatError,
)
from etdb.record.messages import Deactivate, Edit, Message, Publish, VerifyResult
from etdb.record.model import Artifact, Details, File, Info, Storage
from etdb.record.multipart import (
    Completed,
    MultipartAssembler,
    Part,
    join,
    parse_part,
    plan_parts,
    sign_part,
    split,
    verify_part,
)
from etdb.record.patch import apply_patch, diff, normalize_patch
from etdb.record.signing import (
    MAINNET,
    TESTNET,
    Network,
    PrivateKey,
    SigningError,
    recover_address,
    sign_message,
    verify_message,
)
from etdb.record.wire import (
    apply_artifact_patch,
    apply_edit,
    encode,
    encode_deactivate,
    encode_edit,
    encode_publish,
    encode_unsigned_publish,
    make_edit,
    publish_envelope,
    sign_artifact,
    sign_deactivate,
    sign_edit,
    verify_deactivate,
    verify_edit,
    verify_publish,
)

__all__ = [
    "MAINNET",
    "TESTNET",
    "Artifact",
    "Completed",
    "Deactivate",
    "Details",
    "Edit",
    "File",
    "Info",
    "Message",
    "MultipartAssembler",
    "MultipartError",
    "Network",
    "Part",
    "PatchError",
    "PrivateKey",
    "Publish",
    "RecordError",
    "SigningError",
    "Storage",
    "ValidationError",
    "VerifyResult",
    "WireFormatError",
    "apply_artifact_patch",
    "apply_edit",
    "apply_patch",
    "decode",
    "diff",
    "encode",
    "encode_deactivate",
    "encode_edit",
    "encode_publish",
    "encode_unsigned_publish",
    "join",
    "make_edit",
    "normalize_patch",
    "parse_part",
    "plan_parts",
    "publish_envelope",
    "recover_address",
    "sign_artifact",
    "sign_deactivate",
    "sign_edit",
    "sign_message",
    "sign_part",
    "split",
    "verify_deactivate",
    "verify_edit",
    "verify_message",
    "verify_part",
    "verify_publish",
]
