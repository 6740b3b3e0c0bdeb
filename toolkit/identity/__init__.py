"""Technician identities, SSHSIG signatures and allowed_signers trust.

Usage::

    from toolkit.identity import sshsig
    from toolkit.identity.store import resolve

    ident = resolve(passphrase=lambda: "...")
    sig = sshsig.sign(ident.signer, b"message", "file@example.com")
    print(sig.armor())
"""
