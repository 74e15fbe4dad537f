"""Off by default: a keytab joins a machine to a realm; clones must join on their own."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("kerberos-data", default=False, summary="Remove Kerberos keytab and KDC data")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/etc/krb5.keytab", "/var/kerberos/krb5kdc/*")
