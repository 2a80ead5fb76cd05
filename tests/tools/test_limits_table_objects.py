"""The limits table reader is fit for qmail-smtpd: its objects, as the tree
builds them with conf-cxx, need no exception runtime, no thread-safe static
guards, no iostreams and run no global constructors (qmail-smtpd is exec'd
per connection; see DESIGN.md "Start-up cost")."""

from __future__ import annotations

import subprocess

import qmail_harness as qh

TREE = qh.TREE

READER_OBJECTS = ("ip_address.o", "spamt_settings.o", "spamt_format.o", "limits_table.o")


def nm(*args) -> str:
    r = subprocess.run(["nm", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_reader_objects_need_no_runtime_baggage():
    for name in READER_OBJECTS:
        obj = TREE / name
        assert obj.exists(), f"{obj} was not built"
        undefined = nm("-u", obj)
        for sym in ("__cxa_throw", "__cxa_allocate_exception", "__gxx_personality_v0", "__cxa_guard_acquire",
                    "_ZNSo", "_ZSt4cout", "_ZNSt8ios_base"):
            assert sym not in undefined, f"{name} needs {sym}"
        defined = nm("--defined-only", obj)
        assert "_GLOBAL__sub_I" not in defined, f"{name} has a global constructor"
        assert ".init_array" not in subprocess.run(["objdump", "-h", str(obj)], capture_output=True,
                                                   text=True, timeout=30).stdout, f"{name} has .init_array"
