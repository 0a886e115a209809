"""How records travel inside a Flink job.

Between Python operators a record is a pickled frozen dataclass (no JSON round trip per hop);
at the Kafka edges it is the record's JSON from schemas.codec, as bytes in and a string out.
pyflink is imported lazily so the rest of schemas stays usable without a JVM.
"""

from __future__ import annotations

from typing import Any


def record_type() -> Any:
    from pyflink.common import Types

    return Types.PICKLED_BYTE_ARRAY()


def json_type() -> Any:
    from pyflink.common import Types

    return Types.STRING()


def raw_bytes_type() -> Any:
    from pyflink.common import Types

    return Types.PRIMITIVE_ARRAY(Types.BYTE())
