"""WAVE-lite: entities, grants, proofs, verification and revocation on libsodium (reference §7).

Sans-I/O except :mod:`.store` (LMDB) and :mod:`.files` (the ``wv`` command is :mod:`wavemq_edge.cli.wv`):
nothing here imports asyncio or socket or reads a clock; time-dependent calls take ``now`` in seconds since
the epoch. See ``README.md`` in this directory for the API the router uses and the format decisions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .armor import (
        LABEL_ATTESTATION,
        LABEL_ENTITY,
        LABEL_ENTITY_SECRET,
        LABEL_PROOF,
        LABEL_REVOCATION,
        armor,
        dearmor,
    )
    from .attestation import Attestation, create_attestation, revoke_attestation
    from .canonical import decode, encode
    from .entity import Entity, EntitySecret, create_entity
    from .envelope import ObjectType
    from .errors import (
        ArmorError,
        EncodingError,
        GrantError,
        InputError,
        NoProofError,
        PassphraseError,
        Reason,
        StoreError,
        UnknownObjectError,
        VerificationError,
        WaveError,
    )
    from .expiry import parse_duration
    from .files import load_entity, load_entity_secret, load_object, save_entity_secret
    from .ids import format_id, is_wave3_id, looks_like_id, object_id, parse_id
    from .messages import (
        Message,
        Query,
        Subscribe,
        Unsubscribe,
        sign_handshake,
        sign_message,
        sign_query,
        sign_subscribe,
        sign_unsubscribe,
        verify_handshake,
    )
    from .policy import PSET_WAVE, PSET_WAVEMQ, Statement, builtin_pset_id, parse_statement_text
    from .proof import Proof, build_proof
    from .proof_cache import Verifier, VerifierStats
    from .replay import ReplayGuard
    from .revocation import Revocation
    from .store import MemoryStore, WaveStore, default_database_path
    from .verify import DEFAULT_SKEW_S, ProofResult, verify_proof
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".armor": (
            "LABEL_ATTESTATION", "LABEL_ENTITY", "LABEL_ENTITY_SECRET", "LABEL_PROOF", "LABEL_REVOCATION", "armor",
            "dearmor",
        ),
        ".attestation": ("Attestation", "create_attestation", "revoke_attestation"),
        ".canonical": ("decode", "encode"),
        ".entity": ("Entity", "EntitySecret", "create_entity"),
        ".envelope": ("ObjectType",),
        ".errors": (
            "ArmorError", "EncodingError", "GrantError", "InputError", "NoProofError", "PassphraseError", "Reason",
            "StoreError", "UnknownObjectError", "VerificationError", "WaveError",
        ),
        ".expiry": ("parse_duration",),
        ".files": ("load_entity", "load_entity_secret", "load_object", "save_entity_secret"),
        ".ids": ("format_id", "is_wave3_id", "looks_like_id", "object_id", "parse_id"),
        ".messages": (
            "Message", "Query", "Subscribe", "Unsubscribe", "sign_handshake", "sign_message", "sign_query",
            "sign_subscribe", "sign_unsubscribe", "verify_handshake",
        ),
        ".policy": ("PSET_WAVE", "PSET_WAVEMQ", "Statement", "builtin_pset_id", "parse_statement_text"),
        ".proof": ("Proof", "build_proof"),
        ".proof_cache": ("Verifier", "VerifierStats"),
        ".replay": ("ReplayGuard",),
        ".revocation": ("Revocation",),
        ".store": ("MemoryStore", "WaveStore", "default_database_path"),
        ".verify": ("DEFAULT_SKEW_S", "ProofResult", "verify_proof"),
    })

__all__ = [
    "DEFAULT_SKEW_S",
    "LABEL_ATTESTATION",
    "LABEL_ENTITY",
    "LABEL_ENTITY_SECRET",
    "LABEL_PROOF",
    "LABEL_REVOCATION",
    "PSET_WAVE",
    "PSET_WAVEMQ",
    "ArmorError",
    "Attestation",
    "EncodingError",
    "Entity",
    "EntitySecret",
    "GrantError",
    "InputError",
    "MemoryStore",
    "Message",
    "NoProofError",
    "ObjectType",
    "PassphraseError",
    "Proof",
    "ProofResult",
    "Query",
    "Reason",
    "ReplayGuard",
    "Revocation",
    "Statement",
    "StoreError",
    "Subscribe",
    "UnknownObjectError",
    "Unsubscribe",
    "VerificationError",
    "Verifier",
    "VerifierStats",
    "WaveError",
    "WaveStore",
    "armor",
    "build_proof",
    "builtin_pset_id",
    "create_attestation",
    "create_entity",
    "dearmor",
    "decode",
    "default_database_path",
    "encode",
    "format_id",
    "is_wave3_id",
    "load_entity",
    "load_entity_secret",
    "load_object",
    "looks_like_id",
    "object_id",
    "parse_duration",
    "parse_id",
    "parse_statement_text",
    "revoke_attestation",
    "save_entity_secret",
    "sign_handshake",
    "sign_message",
    "sign_query",
    "sign_subscribe",
    "sign_unsubscribe",
    "verify_handshake",
    "verify_proof",
]
