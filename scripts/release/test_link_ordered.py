"""Tests of scripts/release/link-ordered: hash-free names, and a real link through it (a small Rust
program built with cargo and rustc's default linker set-up, lld) that must place the profiled
functions first, in the profile's order, and report what it found.

usage: python3 scripts/release/test_link_ordered.py   (run by scripts/test.d/49-release-layout.sh)
"""
import importlib.machinery
import os
import subprocess
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
WRAPPER = os.path.join(HERE, "link-ordered")
link = importlib.machinery.SourceFileLoader("link_ordered", WRAPPER).load_module()

PROGRAM = textwrap.dedent("""\
    #[inline(never)]
    fn first_in_source(x: u64) -> u64 { x.wrapping_mul(31).rotate_left(7) }
    #[inline(never)]
    fn generic<T: std::fmt::Debug>(t: T) -> usize { format!("{t:?}").len() }
    #[inline(never)]
    fn profiled(x: u64) -> u64 { x ^ 0x5555 }
    fn main() {
        let n = std::env::args().count() as u64;
        println!("{} {} {} {}", first_in_source(n), generic(n), generic("s"), profiled(n));
    }
    """)


class Normalise(unittest.TestCase):
    def test_hashes_and_suffixes_are_dropped(self):
        cases = {
            "alloc::raw_vec::RawVecInner<A>::finish_grow::h347c7fe8d8c64911": "alloc::raw_vec::RawVecInner<A>::finish_grow",
            "<std[e28293b1aa0f68bd]::sys::thread::unix::Thread>::new": "<std::sys::thread::unix::Thread>::new",
            "azure_wi[1a2b]::webhook::mutation::mutate_owned.llvm.3643936799275306673": "azure_wi::webhook::mutation::mutate_owned",
            "tokio::runtime::task::raw::poll::<x[0f]::Y> [clone .llvm.12]": "tokio::runtime::task::raw::poll::<x::Y>",
        }
        for demangled, name in cases.items():
            self.assertEqual(link.normalise(demangled), name)

    def test_both_manglings_demangle_to_the_same_name(self):
        legacy = "_ZN4core3ptr13drop_in_place17h0123456789abcdefE"
        self.assertEqual([link.normalise(n) for n in link.demangle([legacy])], ["core::ptr::drop_in_place"])


class Link(unittest.TestCase):
    """Builds the program twice with different profiles and reads the symbol addresses."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        src = os.path.join(cls.dir.name, "src")
        os.makedirs(src)
        with open(os.path.join(cls.dir.name, "Cargo.toml"), "w") as f:
            f.write('[package]\nname = "layout-probe"\nversion = "0.1.0"\nedition = "2021"\n[workspace]\n')
        with open(os.path.join(src, "main.rs"), "w") as f:
            f.write(PROGRAM)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def build(self, names, *rustc_args):
        profile = os.path.join(self.dir.name, f"profile-{len(names)}.txt")
        with open(profile, "w") as f:
            f.write("# a comment line\n" + "\n".join(names) + "\n")
        env = dict(os.environ, RUSTFLAGS="-C symbol-mangling-version=v0",
                   CARGO_TARGET_DIR=os.path.join(self.dir.name, "target"))
        subprocess.run(["cargo", "rustc", "--quiet", "--", "-C", f"linker={WRAPPER}",
                        "-C", f"link-arg=--azwi-link-order={profile}", *rustc_args],
                       cwd=self.dir.name, env=env, check=True)
        deps = os.path.join(self.dir.name, "target", "debug", "deps")
        reports = sorted((os.path.join(deps, n) for n in os.listdir(deps) if n.endswith(".link-order")),
                         key=os.path.getmtime)
        with open(reports[-1]) as f:
            report = f.read()
        binary = os.path.join(self.dir.name, "target", "debug", "layout-probe")
        out = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True, check=True)
        code = [line.split(" ", 2)[2] for line in out.stdout.splitlines() if line.split(" ", 2)[1] in "tT"]
        ran = subprocess.run([binary], capture_output=True, text=True, check=True).stdout
        return [link.normalise(n) for n in link.demangle(code)], report, ran

    def test_profiled_functions_come_first_in_profile_order(self):
        wanted = ["layout_probe::profiled", "layout_probe::generic::<u64>"]
        order, report, ran = self.build(wanted + ["layout_probe::renamed_since"])
        self.assertEqual(order[:2], wanted, "the profiled functions lead .text, in the profile's order")
        self.assertGreater(order.index("layout_probe::generic::<&str>"), 1, "another instantiation is not pulled in")
        self.assertGreater(order.index("layout_probe::first_in_source"), 1)
        self.assertIn("ordered: 2 of 3 profiled functions found, 2 symbols placed first", report)
        self.assertEqual(len(ran.split()), 4, "the linked program runs")

    def test_another_profile_gives_another_layout(self):
        order, report, _ = self.build(["layout_probe::first_in_source"])
        self.assertEqual(order[0], "layout_probe::first_in_source")
        self.assertIn("ordered: 1 of 1", report)

    def test_another_linker_links_unordered_and_says_so(self):
        order, report, ran = self.build(["layout_probe::first_in_source"], "-C", "link-arg=-fuse-ld=bfd")
        self.assertIn("not ordered: the linker is not lld", report)
        self.assertNotEqual(order[0], "layout_probe::first_in_source")
        self.assertEqual(len(ran.split()), 4, "the program still links and runs")


if __name__ == "__main__":
    unittest.main(verbosity=2)
