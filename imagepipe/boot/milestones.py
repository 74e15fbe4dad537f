"""How far a booting guest got, read from its serial console: the boot test's progress.

Why: a TCG boot to HTTP takes a minute or two; saying "firmware", "kernel", "login",
"cloud-init" and "HTTP" as they happen tells a slow boot from a hung one, and names where a
failed boot stopped. The patterns are loose on purpose (SeaBIOS, OVMF, GRUB, extlinux and
each distro word these lines differently); a milestone that is not recognised is just skipped.
"""

from __future__ import annotations

import re

# (milestone, what on the console proves it was reached), in boot order.
MILESTONES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bootloader", re.compile(r"SYSLINUX|EXTLINUX|ISOLINUX|GRUB|Booting from Hard Disk|"
                              r"BdsDxe: starting|Boot0\d+")),
    ("kernel", re.compile(r"Linux version \d|\[\s*0\.0+\] ")),
    ("init", re.compile(r"systemd\[1\]|Welcome to |Run /sbin/init|Freeing unused kernel")),
    ("cloud-init", re.compile(r"cloud-init\[\d+\]|Cloud-init v\. \S+ running")),
    ("login", re.compile(r"\S+ login: ")),
    ("cloud-init final", re.compile(r"Cloud-init v\. \S+ finished at")),
)


def milestone(console: str, *, http_pending: bool = False) -> str:
    """The furthest milestone `console` shows ("firmware" before anything is printed);
    "HTTP checks" once cloud-init finished and HTTP checks are still waiting."""
    reached = "firmware"
    for name, rx in MILESTONES:
        if rx.search(console):
            reached = name
    if reached == "cloud-init final" and http_pending:
        return "HTTP checks"
    return reached
