"""Stream processing over kes event topics, on Quix Streams (see docs/streams.md)."""

import warnings


def _quiet_authlib() -> None:
    """Quix Streams imports authlib's deprecated httpx integration, and authlib turns its
    own deprecation warnings on for good when it loads: every `kes stream` command and
    pipeline member would print one. Loaded first here, then silenced for that message."""
    try:
        import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")


_quiet_authlib()

from kes.streams.pipeline import Pipeline, Streams, latest_fields  # noqa: E402
from kes.streams.source import BadRecord, StreamEvent  # noqa: E402

__all__ = ["BadRecord", "Pipeline", "StreamEvent", "Streams", "latest_fields"]
