"""Vault keys and custodians: what `masking vault init` creates and what unmasking unlocks.

A vault folder holds:

* `vault.yaml` (public): the vault id, the X25519 sealing public key, the Ed25519 signing public
  key, the recorder's Ed25519 public key, the custodians (name + Ed25519 public key), the threshold
  K, and a certificate: the vault signing key's signature over all of it. Recording needs nothing
  else (plus `recorder.key` and the register to sign and append what it recorded).
* `vault.keys`: the sealing and signing private keys, encrypted (AES-256-GCM) under a random vault
  master key; and the master key wrapped once for every set of K custodians. The wrapping key of a
  set is HKDF-SHA256 over the concatenated 32-byte secrets of its members (in name order), with the
  set's names in the HKDF info and the AES-GCM associated data. Any K custodians together rebuild
  exactly one wrapping key; K-1 of them know nothing about it. This is threshold access built from
  standard primitives only (HKDF, AES-GCM), not a home-made secret-sharing scheme; the price is
  C(N, K) wrapped copies of a 32-byte key, so N and K are bounded (at most 4096 sets).
* `custodians/NAME.credential`: that custodian's 32-byte secret, encrypted with AES-256-GCM under
  a key derived from their passphrase by scrypt (n=2^15, r=8, p=1, random salt). A custodian can
  keep this file on their own medium; it is useless without the passphrase. The custodian's
  Ed25519 key (in `vault.yaml`) is derived from the secret, so a wrong or swapped credential is
  recognised before anything is decrypted.
* `recorder.key`: the recorder's Ed25519 private key (PEM, mode 0600), certified by the vault key.
  Recorders run unattended, so they cannot wait for custodians to sign the register; they sign
  checkpoints with this key instead. It signs only: it cannot unseal anything. Checkpoints made
  while custodians are present (unmask, export with --unmask) are signed by the vault key itself.
* `register.db`: the access register (`masking.vault.register`).

Passphrases come from the terminal (getpass) or, for scripts, from `MASKING_PASSPHRASE_<NAME>`.
"""

from __future__ import annotations

import getpass
import itertools
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from masking._atomic import atomic_write
from masking.config.yamlio import load_yaml
from masking.errors import AccessRefused, ConfigError, VaultError
from masking.vault._codec import b64, canonical, iso, now_utc, unb64

FORMAT = 1
CONFIG_FILE = "vault.yaml"
KEYS_FILE = "vault.keys"
RECORDER_KEY_FILE = "recorder.key"
REGISTER_FILE = "register.db"
CREDENTIALS_DIR = "custodians"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
MAX_SETS = 4096
MIN_PASSPHRASE = 8
SCRYPT = {"n": 2**15, "r": 8, "p": 1}

PassphraseSource = Callable[[str, bool], str]  # (custodian name, confirm) -> passphrase


@dataclass(frozen=True)
class Custodian:
    name: str
    public_key: bytes  # Ed25519, raw 32 bytes


@dataclass(frozen=True)
class VaultConfig:
    """The public configuration of a vault (`vault.yaml`); its certificate is checked on load."""

    vault_id: str
    created: str
    threshold: int
    custodians: tuple[Custodian, ...]
    sealing_public_key: bytes  # X25519 raw
    signing_public_key: bytes  # Ed25519 raw
    recorder_public_key: bytes  # Ed25519 raw
    certificate: bytes = b""

    def _body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "vault_id": self.vault_id,
            "created": self.created,
            "threshold": self.threshold,
            "custodians": [{"name": c.name, "public_key": b64(c.public_key)} for c in self.custodians],
            "sealing_public_key": b64(self.sealing_public_key),
            "signing_public_key": b64(self.signing_public_key),
            "recorder_public_key": b64(self.recorder_public_key),
        }

    def signed_message(self) -> bytes:
        return b"masking-vault-config-v1\0" + canonical(self._body())

    def to_dict(self) -> dict[str, Any]:
        return {**self._body(), "certificate": b64(self.certificate)}

    @classmethod
    def from_dict(cls, d: object, where: str) -> VaultConfig:
        """Parse and check a config (its certificate must verify with its own signing key)."""
        if not isinstance(d, dict):
            raise VaultError(f"{where}: expected a mapping (a vault configuration)")
        expected = {"format", "vault_id", "created", "threshold", "custodians", "sealing_public_key",
                    "signing_public_key", "recorder_public_key", "certificate"}
        if set(d) != expected:
            raise VaultError(f"{where}: fields {sorted(set(d) ^ expected)} are missing or unknown")
        if d["format"] != FORMAT:
            raise VaultError(f"{where}: format {d['format']!r} is not supported (expected {FORMAT})")
        try:
            custodians = tuple(Custodian(str(c["name"]), unb64(c["public_key"], f"{where}: custodian"))
                               for c in d["custodians"])
        except (TypeError, KeyError) as exc:
            raise VaultError(f"{where}: custodians: expected a list of {{name, public_key}}") from exc
        cfg = cls(str(d["vault_id"]), str(d["created"]), int(d["threshold"]), custodians,
                  unb64(d["sealing_public_key"], f"{where}: sealing_public_key"),
                  unb64(d["signing_public_key"], f"{where}: signing_public_key"),
                  unb64(d["recorder_public_key"], f"{where}: recorder_public_key"),
                  unb64(d["certificate"], f"{where}: certificate"))
        try:
            cfg.signing_key().verify(cfg.certificate, cfg.signed_message())
            X25519PublicKey.from_public_bytes(cfg.sealing_public_key)
            Ed25519PublicKey.from_public_bytes(cfg.recorder_public_key)
        except (InvalidSignature, ValueError) as exc:
            raise VaultError(f"{where}: the configuration's certificate does not verify (altered)") from exc
        return cfg

    def signing_key(self) -> Ed25519PublicKey:
        try:
            return Ed25519PublicKey.from_public_bytes(self.signing_public_key)
        except ValueError as exc:
            raise VaultError("vault signing public key is not a valid Ed25519 key") from exc

    def public_key(self, signer: str) -> Ed25519PublicKey:
        """The public key of a signer name: `vault` or `recorder` (certified by the vault key)."""
        if signer == "vault":
            return self.signing_key()
        if signer == "recorder":
            return Ed25519PublicKey.from_public_bytes(self.recorder_public_key)
        raise VaultError(f"unknown signer {signer!r} (expected vault or recorder)")

    def verify(self, signer: str, signature: bytes, message: bytes) -> bool:
        try:
            self.public_key(signer).verify(signature, message)
            return True
        except InvalidSignature:
            return False

    def custodian(self, name: str) -> Custodian | None:
        return next((c for c in self.custodians if c.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class Signer:
    """A private Ed25519 key and the name verifiers know it by (`vault` or `recorder`)."""

    name: str
    key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


@dataclass(frozen=True)
class Unlocked:
    """The vault's private keys, recovered by K custodians."""

    sealing: X25519PrivateKey
    signer: Signer
    custodians: tuple[str, ...]


def load_config(vault: Path) -> VaultConfig:
    path = vault / CONFIG_FILE
    if not path.is_file():
        raise VaultError(f"{vault}: not a vault (no {CONFIG_FILE}; create one with `masking vault init`)")
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise VaultError(str(exc)) from exc
    return VaultConfig.from_dict(data, str(path))


def load_recorder_signer(vault: Path, config: VaultConfig) -> Signer | None:
    """The recorder's signing key, or None when this machine does not hold it."""
    path = vault / RECORDER_KEY_FILE
    if not path.is_file():
        return None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise VaultError(f"{path}: cannot load the recorder key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey) or key.public_key().public_bytes_raw() != config.recorder_public_key:
        raise VaultError(f"{path}: is not the recorder key certified in {CONFIG_FILE}")
    return Signer("recorder", key)


# ---------------------------------------------------------------- passphrases
def env_name(custodian: str) -> str:
    return f"MASKING_PASSPHRASE_{custodian.upper()}"


def terminal_passphrase(name: str, confirm: bool) -> str:
    """`MASKING_PASSPHRASE_<NAME>` if set, else asked on the terminal (twice when `confirm`)."""
    env = os.environ.get(env_name(name))
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise AccessRefused(f"no passphrase for custodian {name}: set {env_name(name)} or run on a terminal")
    first = getpass.getpass(f"Passphrase for custodian {name}: ")
    if confirm and getpass.getpass(f"Repeat the passphrase for {name}: ") != first:
        raise ConfigError(f"custodian {name}: the two passphrases differ")
    return first


# ---------------------------------------------------------------- primitives (all from `cryptography`)
def _scrypt(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _custodian_key(secret: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_hkdf(secret, b"", b"masking-custodian-identity-v1"))


def _set_info(vault_id: str, names: Sequence[str]) -> bytes:
    return b"masking-vault-share-v1\0" + vault_id.encode() + b"\0" + ",".join(names).encode()


def _set_key(vault_id: str, members: Sequence[tuple[str, bytes]]) -> bytes:
    ordered = sorted(members, key=lambda m: m[0].lower())
    return _hkdf(b"".join(s for _, s in ordered), vault_id.encode(), _set_info(vault_id, [n for n, _ in ordered]))


def _seal_json(key: bytes, obj: dict[str, str], aad: bytes) -> dict[str, str]:
    nonce = os.urandom(12)
    return {"nonce": b64(nonce), "ct": b64(AESGCM(key).encrypt(nonce, canonical(obj), aad))}


def _cred_aad(vault_id: str, name: str) -> bytes:
    return b"masking-custodian-credential-v1\0" + vault_id.encode() + b"\0" + name.encode()


# ---------------------------------------------------------------- init
def parse_custodians(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if not NAME_RE.match(n):
            raise ConfigError(f"--custodians: {n!r} is not a valid name (letters, digits, _; starts with a letter)")
    lowered = [n.lower() for n in names]
    dups = sorted({n for n in lowered if lowered.count(n) > 1})
    if dups:
        raise ConfigError(f"--custodians: repeated name(s) {dups} (names are case-insensitive)")
    return names


def create_vault(vault: Path, custodians: Sequence[str], threshold: int,
                 passphrase: PassphraseSource = terminal_passphrase) -> tuple[VaultConfig, Signer]:
    """Create a vault folder's key files (see the module docstring); returns its public
    configuration and the vault signer (to sign the register's first checkpoint, then forgotten)."""
    n = len(custodians)
    if n < 2:
        raise ConfigError("--custodians: a vault needs at least two custodians (two-person rule)")
    if not 2 <= threshold <= n:
        raise ConfigError(f"--threshold: must lie in 2..{n} (the number of custodians), got {threshold}")
    if math.comb(n, threshold) > MAX_SETS:
        raise ConfigError(f"{n} custodians with threshold {threshold} make {math.comb(n, threshold)} custodian sets; "
                          f"at most {MAX_SETS} are supported")
    if vault.exists() and (not vault.is_dir() or any(vault.iterdir())):
        raise ConfigError(f"{vault}: exists and is not an empty folder; a vault is never overwritten")
    phrases = {}
    for name in custodians:
        try:
            p = passphrase(name, True)
        except AccessRefused as exc:  # nothing to refuse yet: a set-up problem
            raise ConfigError(str(exc)) from exc
        if len(p) < MIN_PASSPHRASE:
            raise ConfigError(f"custodian {name}: the passphrase must have at least {MIN_PASSPHRASE} characters")
        phrases[name] = p
    vault_id = str(uuid.uuid4())
    sealing = X25519PrivateKey.generate()
    signing = Ed25519PrivateKey.generate()
    recorder = Ed25519PrivateKey.generate()
    master = AESGCM.generate_key(bit_length=256)
    secrets = {name: os.urandom(32) for name in custodians}
    config = VaultConfig(
        vault_id, iso(now_utc()), threshold,
        tuple(Custodian(name, _custodian_key(secrets[name]).public_key().public_bytes_raw()) for name in custodians),
        sealing.public_key().public_bytes_raw(), signing.public_key().public_bytes_raw(),
        recorder.public_key().public_bytes_raw(),
    )
    config = VaultConfig(**{**config.__dict__, "certificate": signing.sign(config.signed_message())})
    sets = []
    for combo in itertools.combinations(sorted(custodians, key=str.lower), threshold):
        key = _set_key(vault_id, [(c, secrets[c]) for c in combo])
        nonce = os.urandom(12)
        sets.append({"members": list(combo), "nonce": b64(nonce),
                     "ct": b64(AESGCM(key).encrypt(nonce, master, _set_info(vault_id, combo)))})
    private = _seal_json(master, {"sealing": b64(sealing.private_bytes_raw()), "signing": b64(signing.private_bytes_raw())},
                         b"masking-vault-private-v1\0" + vault_id.encode())
    keys = {"format": FORMAT, "vault_id": vault_id, "private": private, "sets": sets}
    (vault / CREDENTIALS_DIR).mkdir(parents=True, exist_ok=True)
    for name in custodians:
        salt = os.urandom(16)
        key = _scrypt(salt, **SCRYPT).derive(phrases[name].encode("utf-8"))
        nonce = os.urandom(12)
        cred = {"format": FORMAT, "vault_id": vault_id, "custodian": name,
                "kdf": {"name": "scrypt", "salt": b64(salt), **SCRYPT}, "nonce": b64(nonce),
                "ct": b64(AESGCM(key).encrypt(nonce, secrets[name], _cred_aad(vault_id, name)))}
        path = credential_path(vault, name)
        atomic_write(path, json.dumps(cred, indent=1), "credential")
        path.chmod(0o600)
    atomic_write(vault / KEYS_FILE, json.dumps(keys, indent=1), "vault keys")
    pem = recorder.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    atomic_write(vault / RECORDER_KEY_FILE, pem, "recorder key")
    (vault / RECORDER_KEY_FILE).chmod(0o600)
    header = ("# masking vault: public configuration (safe to copy to recorders; never edit: it is signed)\n")
    atomic_write(vault / CONFIG_FILE, header + yaml.safe_dump(config.to_dict(), sort_keys=False), "vault config")
    return config, Signer("vault", signing)


def credential_path(vault: Path, name: str) -> Path:
    return vault / CREDENTIALS_DIR / f"{name}.credential"


# ---------------------------------------------------------------- unlock
def check_custodian_names(config: VaultConfig, names: Sequence[str]) -> list[str]:
    """The canonical names of `names`; `AccessRefused` for unknown, repeated or too few names."""
    canon = []
    for n in names:
        c = config.custodian(n)
        if c is None:
            raise AccessRefused(f"custodian {n!r} is not a custodian of this vault "
                                f"({', '.join(x.name for x in config.custodians)})")
        if c.name in canon:
            raise AccessRefused(f"custodian {c.name} is named more than once; {config.threshold} distinct custodians are needed")
        canon.append(c.name)
    if len(canon) < config.threshold:
        raise AccessRefused(f"{len(canon)} custodian(s) given, this vault needs {config.threshold} distinct custodians")
    return canon


def _custodian_secret(vault: Path, config: VaultConfig, name: str, phrase: str) -> bytes:
    path = credential_path(vault, name)
    try:
        cred = json.loads(path.read_text(encoding="utf-8"))
        kdf = cred["kdf"]
        salt = unb64(kdf["salt"], f"{path}: salt")
        nonce, ct = unb64(cred["nonce"], f"{path}: nonce"), unb64(cred["ct"], f"{path}: ct")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (OSError, ValueError, KeyError, TypeError, VaultError) as exc:
        raise AccessRefused(f"custodian {name}: credential file {path} is missing or unreadable ({exc})") from exc
    if n < SCRYPT["n"] or r < SCRYPT["r"] or p < 1:
        raise AccessRefused(f"custodian {name}: {path} has weakened scrypt parameters (altered)")
    try:
        key = _scrypt(salt, n, r, p).derive(phrase.encode("utf-8"))
        secret = AESGCM(key).decrypt(nonce, ct, _cred_aad(config.vault_id, name))
    except (InvalidTag, ValueError) as exc:
        raise AccessRefused(f"custodian {name}: wrong passphrase (or the credential file was altered)") from exc
    custodian = config.custodian(name)
    assert custodian is not None
    if _custodian_key(secret).public_key().public_bytes_raw() != custodian.public_key:
        raise AccessRefused(f"custodian {name}: the credential does not belong to this custodian of this vault")
    return secret


def unlock(vault: Path, config: VaultConfig, names: Sequence[str],
           passphrase: PassphraseSource = terminal_passphrase) -> Unlocked:
    """Recover the private keys with K distinct custodians; `AccessRefused` says why not."""
    canon = check_custodian_names(config, names)
    secrets = [(name, _custodian_secret(vault, config, name, passphrase(name, False))) for name in canon]
    members = sorted(secrets, key=lambda m: m[0].lower())[: config.threshold]
    want = [n for n, _ in members]
    try:
        keys = json.loads((vault / KEYS_FILE).read_text(encoding="utf-8"))
        entry = next(s for s in keys["sets"] if [m.lower() for m in s["members"]] == [w.lower() for w in want])
        master = AESGCM(_set_key(config.vault_id, members)).decrypt(
            unb64(entry["nonce"], "set nonce"), unb64(entry["ct"], "set key"), _set_info(config.vault_id, entry["members"]))
        priv = json.loads(AESGCM(master).decrypt(
            unb64(keys["private"]["nonce"], "private nonce"), unb64(keys["private"]["ct"], "private keys"),
            b"masking-vault-private-v1\0" + config.vault_id.encode()))
        sealing = X25519PrivateKey.from_private_bytes(unb64(priv["sealing"], "sealing key"))
        signing = Ed25519PrivateKey.from_private_bytes(unb64(priv["signing"], "signing key"))
    except StopIteration as exc:
        raise VaultError(f"{vault / KEYS_FILE}: holds no key for custodians {want}") from exc
    except (OSError, ValueError, KeyError, TypeError, InvalidTag) as exc:
        raise VaultError(f"{vault / KEYS_FILE}: cannot recover the vault keys ({type(exc).__name__}): "
                         "the file is damaged or altered") from exc
    if (sealing.public_key().public_bytes_raw() != config.sealing_public_key
            or signing.public_key().public_bytes_raw() != config.signing_public_key):
        raise VaultError(f"{vault / KEYS_FILE}: the recovered keys do not match {CONFIG_FILE}")
    return Unlocked(sealing, Signer("vault", signing), tuple(canon))
