"""Technician identities, SSHSIG signatures and allowed_signers trust.

Usage::

    from toolkit.identity import sshsig
    from toolkit.identity.store import resolve

    ident = resolve(passphrase=lambda: "...")
    sig = sshsig.sign(ident.signer, b"message", "file@example.com")
    print(sig.armor())
"""

#: Where the passphrase of toolkit's encrypted files (the key file, the ticket
#: credentials file) comes from when it is set; else toolkit asks on the terminal.
PASSPHRASE_ENV = "TOOLKIT_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

__all__ = ["PASSPHRASE_ENV"]
