"""Expected errors become one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import click

from chromestore.app import session
from chromestore.errors import InputError, SchemaError, StoreError


class ErrorHandlingGroup(click.Group):
    """Turns expected errors into one-line messages and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (InputError, SchemaError, StoreError, KeyError, ValueError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            session.fail(str(msg))
        except PermissionError as e:
            if e.filename:  # a local file
                session.fail(str(e))
            session.fail(_access_denied(ctx, e))
        except Exception as e:
            if type(e).__module__.split(".")[0] in ("botocore", "aiobotocore"):
                session.fail(_access_denied(ctx, e))
            raise


def _access_denied(ctx: click.Context, e: Exception) -> str:
    """One line for an object store that refused us (wrong or missing credentials)."""
    so = session.storage_options(ctx) or {}
    where = f" at {so['endpoint_url']}" if "endpoint_url" in so else ""
    return (
        f"the object store{where} refused access ({type(e).__name__}: {e}); check the "
        "credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or \"key\"/"
        "\"secret\" in --storage-options, and that they may use this bucket"
    )
