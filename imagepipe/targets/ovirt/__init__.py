"""Publish to oVirt: disk and ISO upload through ovirt-imageio, templates, template listing.

Heavy libraries (ovirtsdk4, ovirt_imageio) are imported inside functions so importing this
package stays cheap. See docs/ovirt.md.
"""

from imagepipe.targets.ovirt.connection import EngineConfig, EngineError, connect, resolve_config
from imagepipe.targets.ovirt.templates import (
                                                TemplateResult,
                                                TemplateSpec,
                                                list_templates,
                                                make_template,
)
from imagepipe.targets.ovirt.upload import UploadOptions, UploadResult, upload_disk, upload_iso

__all__ = ["EngineConfig", "EngineError", "connect", "resolve_config", "TemplateResult",
           "TemplateSpec", "list_templates", "make_template", "UploadOptions", "UploadResult",
           "upload_disk", "upload_iso"]
