"""Every declared port setting through the real vswitchctl and vswitchd, and back after a restart.

add-port with an option for each setting (each at its declared example), then set-port
``key=value`` for every setting declared to change at run time, as a user types them: ``show
--json`` has each value, the kernel has the TAP's namespace and MTU, the config file keeps them,
and a restarted daemon comes back with them.  A setting declared not to change at run time is
refused in one line and changes nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.netns.harness import Daemon
from vswitch.port_config import CONFIG_FILE_ONLY, PORT_SETTINGS, RUNTIME_SETTINGS, VF_SETTINGS

# A VF's settings belong to a guest on a VF ([nic] mode = "sriov"), and a guest's NIC queue
# policies to a guest behind the NIC, not to a switch port: this switch port keeps their defaults
# (tests/netns/test_sriov.py, tests/netns/test_nic_qdisc_live.py and tests/unit/test_port_config.py
# take them through a switch with a NIC).
ON_A_VF = {"vf", "qmp", "rx_qdisc", "tx_qdisc", *VF_SETTINGS}

pytestmark = pytest.mark.netns


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="vswitchd-settings-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _options() -> dict[str, list[str]]:
    """setting -> the option strings vswitchctl add-port has for it (read from its parser)."""
    from vswitch.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    add = sub.choices["add-port"]  # type: ignore[attr-defined]
    return {a.dest: list(a.option_strings) for a in add._actions if a.dest in PORT_SETTINGS}


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _mtu_in(lab: Any, ns: str, ifname: str) -> int:
    return json.loads(lab.run(ns, "ip", "-j", "link", "show", ifname).stdout)[0]["mtu"]


def _settings(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p[k] for k in PORT_SETTINGS}


def test_every_setting_through_vswitchctl_show_the_kernel_and_a_restart(lab, workdir):
    ns1, ns2 = lab.netns("g1"), lab.netns("g2")
    tap = lab.name("t1")
    d = Daemon(lab, workdir).start()
    options = _options()
    assert set(options) == set(PORT_SETTINGS) - set(CONFIG_FILE_ONLY)     # qmp: the config file's only

    # add-port, every option at once: the declared examples (a TAP in our own namespace).
    want = {k: s.default if k in ON_A_VF else s.example for k, s in PORT_SETTINGS.items()}
    want.update(name=tap, type="tap", netns=ns1, persistent=False)
    argv = ["add-port", tap]
    for key, value in want.items():
        if key == "name" or value == PORT_SETTINGS[key].default:
            continue
        argv += [options[key][0]] if isinstance(value, bool) else [options[key][0], _text(value)]
    r = d.ctl(*argv)
    assert r.returncode == 0, (argv, r.stderr)
    port = d.wait_state(tap, "up")
    assert _settings(port) == want
    assert _mtu_in(lab, ns1, tap) == 9000

    # set-port: every run-time setting back to its default (as text: none clears), moved to ns2.
    back = {k: (PORT_SETTINGS[k].default_text()) for k in RUNTIME_SETTINGS}
    back.update(netns=ns2, persistent="on")
    r = d.ctl("set-port", tap, *(f"{k}={v}" for k, v in back.items()))
    assert r.returncode == 0, r.stderr
    port = d.wait_state(tap, "up")
    want.update({k: PORT_SETTINGS[k].default for k in RUNTIME_SETTINGS}, netns=ns2, persistent=True)
    assert _settings(port) == want
    assert _mtu_in(lab, ns2, tap) == 1500
    saved = d.config.read_text()
    assert "persistent = true" in saved and f'netns = "{ns2}"' in saved and "mtu" not in saved

    # Not run-time: refused in one line, nothing changed.
    before = (d.call("show")["ports"], d.config.read_bytes())
    for key, text in (("number", "9"), ("type", "attach"), ("name", lab.name("t9"))):
        r = d.ctl("set-port", tap, f"{key}={text}", "mtu=1400")
        assert r.returncode == 1 and r.stderr == (f"vswitchctl: port {tap!r}: {key} cannot change at run time: "
                                                  "delete the port and add it again\n"), r.stderr
        assert (d.call("show")["ports"], d.config.read_bytes()) == before

    # A restart from the saved file has every setting as it was (persistent off again first:
    # a kept TAP would still sit in ns2 under the same name).
    assert d.ctl("set-port", tap, "persistent=off").returncode == 0
    want["persistent"] = False
    assert d.stop() == 0
    d.start()
    assert _settings(d.wait_state(tap, "up")) == want
    assert _mtu_in(lab, ns2, tap) == 1500
