"""Import and export of prompt versions, one module per format.

PEFT adapter folders (``peft``), KoboldAI soft-prompt zips (``kobold``), prompt packs
(``pack``) and plain Promptbank files (``files``); a task's rows for OpenAI fine-tuning
(``openai_jsonl``); ``formats`` picks one by name or by what a
path holds. Every import checks what it brings against the loaded model (``ImportTarget``)
and reads untrusted archives through ``archive``.
"""

from engine.interop.common import ImportReport, ImportTarget, load_version
from engine.interop.files import export_safetensors, import_safetensors
from engine.interop.formats import (
    EXPORT_FORMATS,
    FORMATS,
    detect_import_format,
    export_version,
    import_any,
)
from engine.interop.kobold import export_kobold, import_kobold
from engine.interop.pack import export_pack, import_pack
from engine.interop.peft import export_peft, import_peft, read_peft

__all__ = ["EXPORT_FORMATS", "FORMATS", "ImportReport", "ImportTarget", "detect_import_format",
           "export_kobold", "export_pack", "export_peft", "export_safetensors", "export_version",
           "import_any", "import_kobold", "import_pack", "import_peft", "import_safetensors",
           "load_version", "read_peft"]
