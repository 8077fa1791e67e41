"""Exceptions of the WAVE-lite layer, and the machine-readable refusal reasons.

Everything raised by ``wavemq_edge.wave`` derives from :class:`WaveError`. Two families matter to callers:

* :class:`VerificationError` -- an object (entity, attestation, proof, message, ...) that came from
  somewhere else is refused. It carries a :class:`Reason` so the router can map it to a numbered error
  code and tests can assert the exact cause; the message is for humans and names the object and field.
  The blame is always on whoever produced the object.
* :class:`InputError` -- text typed by a local user (expiry, statement, hash, CLI argument) does not
  parse. The message names what is wrong and where; blame is local.

Other subclasses name local failures (:class:`PassphraseError`, :class:`StoreError`, :class:`GrantError`).
"""

from __future__ import annotations

import enum

__all__ = [
    "ArmorError",
    "EncodingError",
    "GrantError",
    "InputError",
    "NoProofError",
    "PassphraseError",
    "Reason",
    "StoreError",
    "UnknownObjectError",
    "VerificationError",
    "WaveError",
]


class Reason(enum.Enum):
    """Why an object was refused. Values are stable strings: the router maps them to wire error codes."""

    #: The bytes are not a well-formed object of the expected kind (wrong shape, wrong field type).
    MALFORMED = "malformed"
    #: Well-formed CBOR but not in canonical form (long-form ints, unsorted keys, indefinite lengths...).
    NON_CANONICAL = "non_canonical"
    #: Larger than the named bound (bytes, count of items, path length, statements).
    OVERSIZE = "oversize"
    #: A signature does not verify under the key of the entity the object names.
    BAD_SIGNATURE = "bad_signature"
    #: Bytes presented for an ID hash to a different ID (a substituted entity, a forged message id).
    ID_MISMATCH = "id_mismatch"
    #: An entity the object depends on is neither included nor known locally (transient: not cached).
    UNKNOWN_ENTITY = "unknown_entity"
    #: ``now >= not_after`` for an entity or attestation.
    EXPIRED = "expired"
    #: ``now < not_before - skew`` (transient: not cached).
    NOT_YET_VALID = "not_yet_valid"
    #: The revocation commitment of an entity or attestation has been revealed.
    REVOKED = "revoked"
    #: The chain is longer than the re-delegation TTL allows.
    TTL_EXCEEDED = "ttl_exceeded"
    #: An attestation or request names a different namespace than the proof.
    WRONG_NAMESPACE = "wrong_namespace"
    #: A path does not start with an attestation issued by the namespace itself.
    NOT_FROM_NAMESPACE = "not_from_namespace"
    #: ``subject(a_i) != attester(a_{i+1})`` somewhere in a path.
    BROKEN_LINK = "broken_link"
    #: A path is empty, repeats an attestation, or points outside the attestation list.
    BAD_PATH = "bad_path"
    #: The proof is for another subject, or a path ends at another entity.
    WRONG_SUBJECT = "wrong_subject"
    #: The proof is valid but does not grant the required permission on the required resource.
    INSUFFICIENT_PERMISSION = "insufficient_permission"
    #: A publish URI contains ``*`` or ``+``.
    WILDCARD_URI = "wildcard_uri"
    #: A message/request id already seen from this source within the replay window.
    REPLAYED = "replayed"
    #: Timestamp older than the accepted age.
    STALE_TIMESTAMP = "stale_timestamp"
    #: Timestamp further in the future than the clock skew allows.
    FUTURE_TIMESTAMP = "future_timestamp"
    #: A proof was referred to by ID but is not cached here: the peer must resend it.
    UNKNOWN_PROOF = "unknown_proof"
    #: The revocation feed is older than ``max_revocation_staleness_s`` and ``default_to_unrevoked`` is off.
    REVOCATION_FEED_STALE = "revocation_feed_stale"
    #: The object is of another kind than the one expected (an attestation where a proof was due).
    WRONG_KIND = "wrong_kind"


class WaveError(Exception):
    """Base of every exception raised by ``wavemq_edge.wave``."""


class InputError(WaveError, ValueError):
    """Local input (CLI argument, expiry, statement, printable hash) does not parse."""


class ArmorError(InputError):
    """A PEM-style armored file is malformed or carries an unsupported label."""


class PassphraseError(WaveError):
    """The passphrase of an entity secret file is missing or wrong."""


class GrantError(WaveError):
    """A grant (attestation) cannot be created as asked: creation rules of reference §7.3."""


class NoProofError(WaveError):
    """No chain of valid grants in the store gives the subject the required statement."""


class StoreError(WaveError):
    """The WAVE database cannot be opened or read."""


class UnknownObjectError(StoreError):
    """An entity, attestation or proof named by hash is not in the database."""


class VerificationError(WaveError):
    """An object is refused. ``reason`` is machine-readable, ``str(err)`` is for people."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason.name}, {str(self)!r})"


class EncodingError(VerificationError):
    """Bytes are not strict canonical CBOR (reason NON_CANONICAL, MALFORMED or OVERSIZE); names the offset."""
