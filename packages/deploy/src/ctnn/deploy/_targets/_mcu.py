"""Targets "cortex-m3" and "cortex-m4": the C build plus bare-metal firmware, cross-compiled and sized.

The build directory holds everything the "c" target writes (the model's sources are the
same; ``ctnn_dot.h`` switches to SMLAD where the core has the DSP extension) plus the
firmware sources, ``model.elf``/``baseline.elf`` built with arm-none-eabi-gcc, and the
size report (``info["size"]``). :class:`~ctnn.deploy._qemu.QemuModule` runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._cemit import DEFAULT_NAME, check_name
from .._firmware import CORES, Core, check_fits, compile_firmware, find_arm_gcc, write_firmware_sources
from .._frontend import Lowered
from ._c import write_c_sources


class CortexMTarget:
    lowering = {"extern_dot": True}

    def __init__(self, core: Core):
        self.core = core
        self.name = core.name
        self.aliases: tuple[str, ...] = ()
        self.description = f"bare-metal firmware for {core.name} ({core.description}), run under QEMU"

    def build(
        self,
        lowered: Lowered,
        out_dir: Path,
        *,
        flash_kb: int | None = None,
        ram_kb: int | None = None,
        name: str = DEFAULT_NAME,
    ) -> dict[str, Any]:
        """Write the sources, cross-compile ``model.elf``/``baseline.elf``; ``flash_kb``/``ram_kb``
        select a part's memory (default: the QEMU board's 4 MiB each); ``name`` prefixes the
        symbols (``ctnn_<name>_run``)."""
        find_arm_gcc()  # fail before writing anything when the cross-compiler is missing
        flash = int(flash_kb * 1024) if flash_kb else self.core.flash_bytes
        ram = int(ram_kb * 1024) if ram_kb else self.core.ram_bytes
        check_name(name)
        info = write_c_sources(lowered, out_dir, name)
        check_fits(info["const_bytes"], info["arena_bytes"] + info["workspace_bytes"], self.core, flash, ram)
        info["firmware"] = write_firmware_sources(
            out_dir, lowered.inputs, lowered.outputs, info["api"], self.core, flash, ram
        )
        info["size"] = compile_firmware(out_dir, self.core, flash, ram, name)
        info["elf"], info["baseline_elf"] = "model.elf", "baseline.elf"
        return info

    def load(self, build_dir: Path):
        from .._qemu import QemuModule

        return QemuModule(build_dir)


from . import register_target  # noqa: E402

for _core in CORES.values():
    register_target(CortexMTarget(_core))
