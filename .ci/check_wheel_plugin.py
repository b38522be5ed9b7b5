"""Part of .ci/check_wheel, run by the freshly installed wheel's interpreter outside the checkout.

Checks that the installed package is the one in use, that a fusion through the public API
behaves, that npe2's plugin manager discovers every contribution declared in the repository's
napari.yaml, and that the Qt-free contributions (reader, sample data) work.
Arguments: path of the repository's napari.yaml, expected version.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

PLUGIN = "napari-acnn-fusion"


def check_import(version: str) -> None:
    import acnn_fusion

    location = Path(acnn_fusion.__file__).resolve()
    assert "site-packages" in location.parts, f"acnn_fusion imported from {location}, not the wheel"
    assert acnn_fusion.__version__ == version, (acnn_fusion.__version__, version)
    try:
        import qtpy  # noqa: F401
    except Exception:
        pass  # expected: the package pulls in no Qt binding
    else:
        from importlib.util import find_spec

        bindings = [b for b in ("PyQt5", "PyQt6", "PySide2", "PySide6") if find_spec(b)]
        assert not bindings, f"a Qt binding was installed with the wheel: {bindings}"
    print(f"acnn_fusion {acnn_fusion.__version__} from {location.parent}; no Qt binding installed")


def check_fusion() -> None:
    from acnn_fusion import fuse_pair, fuse_stack
    from acnn_fusion.synthetic import blob_mask, render_pair, sample_stack

    rng = np.random.default_rng(0)
    sharp = (rng.random((160, 192)) * 255).astype(np.uint8)
    pair = render_pair(sharp, blob_mask(sharp.shape, seed=2), radius=3.0)
    result = fuse_pair(pair.image_a, pair.image_b, precision="fp32")
    assert result.fused.shape == sharp.shape and result.fused.dtype == np.uint8
    from_a = result.fused == pair.image_a
    from_b = result.fused == pair.image_b
    assert np.all(from_a | from_b), "a fused pixel comes from neither source"
    accuracy = float(np.mean(result.decision_map.astype(bool) == pair.mask.astype(bool)))
    assert accuracy > 0.9, f"decision accuracy {accuracy:.3f} on a generated pair"
    stack = sample_stack()
    folded = fuse_stack(stack.stack, axis=0)
    assert folded.fused.shape == stack.sharp.shape
    depth_ok = float(np.mean(np.abs(folded.depth_map.astype(int) - stack.depth_index.astype(int)) <= 1))
    print(f"API: generated pair decision accuracy {accuracy:.2%}; stack depth within ±1 slice {depth_ok:.2%}")


def check_plugin(manifest_path: Path, version: str) -> None:
    from npe2 import PluginManager

    declared = yaml.safe_load(manifest_path.read_text())["contributions"]
    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest(PLUGIN)
    assert str(manifest.package_metadata.version) == version, manifest.package_metadata.version

    commands = {c.id for c in manifest.contributions.commands or []}
    assert commands == {c["id"] for c in declared["commands"]}, commands
    for command_id in commands:
        pm.get_command(command_id)  # raises if the manager does not know it

    widgets = {w.display_name for w in manifest.contributions.widgets or []}
    listed = {w.display_name for w in pm.iter_widgets() if w.plugin_name == PLUGIN}
    assert listed == widgets == {w["display_name"] for w in declared["widgets"]}, (listed, widgets)

    samples = {key: [s.key for s in contribs] for key, contribs in pm.iter_sample_data()}
    assert sorted(samples.get(PLUGIN, [])) == sorted(s["key"] for s in declared["sample_data"]), samples

    for menu_key, items in declared["menus"].items():
        found = {getattr(i, "command", None) or getattr(i, "submenu", None) for i in pm.iter_menu(menu_key)}
        wanted = {i.get("command") or i.get("submenu") for i in items}
        assert wanted <= found, (menu_key, wanted, found)

    from acnn_fusion.io import write_image
    from acnn_fusion.synthetic import sample_stack

    stack_path = Path("reader_stack.tif").resolve()
    write_image(stack_path, sample_stack().stack, metadata={"axes": "ZYX"})
    readers = [r for r in pm.iter_compatible_readers(str(stack_path)) if r.plugin_name == PLUGIN]
    assert readers, "the plugin's reader does not claim a TIFF stack"
    read = pm.get_command(readers[0].command).exec(args=(str(stack_path),))
    assert callable(read), "the reader refused a TIFF stack"
    layers = read(str(stack_path))
    assert layers and np.asarray(layers[0][0]).shape[0] == 8, "reader returned no 8-slice stack"

    for plugin_name, contributions in pm.iter_sample_data():
        for sample in contributions if plugin_name == PLUGIN else []:
            data = pm.get_command(sample.command).exec()
            assert data and all(np.asarray(d[0]).size for d in data), sample.key
    print(
        f"npe2 discovers {PLUGIN} {version}: {len(commands)} commands, widgets {sorted(listed)}, "
        f"samples {sorted(samples[PLUGIN])}, {len(declared['menus'])} menus; reader and samples run"
    )


def main() -> int:
    manifest_path, version = Path(sys.argv[1]), sys.argv[2]
    check_import(version)
    check_fusion()
    check_plugin(manifest_path, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
