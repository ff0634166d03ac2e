"""The first error lines of a failed build's output, on what the real tools print
(captured from gcc 12, zig cc 0.13 (clang 18, lld), GNU ld and rustc; the same tools
run for real in tests/integration/test_errorlines.py)."""

from __future__ import annotations

from wheelfarm.build.errorlines import first_errors, without_noise

GCC = """\
+ /usr/bin/gcc -c src/broken.c -o build/broken.o
src/broken.c: In function 'f':
src/broken.c:3:3: error: expected ',' or ';' before 'return'
    3 |   return x;
      |   ^~~~~~
src/broken.c: In function 'g':
src/broken.c:5:22: error: 'y' undeclared (first use in this function)
    5 | int g(void) { return y; }
      |                      ^
src/broken.c:5:22: note: each undeclared identifier is reported only once
error: command '/usr/bin/gcc' failed with exit code 1

ERROR Backend subprocess exited when trying to invoke build_wheel
"""

CLANG = """\
src/fastadd.c:10:27: error: expected ';' at end of declaration
   10 |     long long a, b, result
      |                           ^
      |                           ;
src/fastadd.c:5:22: \x1b[0;1;31merror: \x1b[0muse of undeclared identifier 'y'
2 errors generated.
error: Command '['/cache/zig/bin/cc', '-c', 'src/fastadd.c']' returned non-zero exit status 1.

TIP pass --env-dir and --sdist-extract-dir to keep the build environment and sources
ERROR Backend subprocess exited when trying to invoke build_wheel
"""

FATAL = """\
inc.c:1:10: fatal error: 'nothing.h' file not found
    1 | #include <nothing.h>
      |          ^~~~~~~~~~~
1 error generated.
"""

GNU_LD = """\
/usr/bin/ld: /tmp/ccquvvES.o: in function `f':
/src/undef.c:2: undefined reference to `missing'
/usr/bin/ld: undef.c:(.text+0x5): undefined reference to `other'
undef2.c:(.text+0x5): undefined reference to `other'
collect2: error: ld returned 1 exit status
"""

LLD = """\
ld.lld: error: undefined symbol: missing
>>> referenced by undef.c:2
>>>               /root/.cache/zig/o/afc1a636fa24a38f37f334dfe68cc817/undef.o:(f)
error: undefined symbol: lonely
"""

RUST = """\
   Compiling rustsum v0.1.0 (/work/src)
error[E0425]: cannot find value `x` in this scope
 --> src/lib.rs:1:17
  |
1 | fn f() -> i32 { x }
  |                 ^ not found in this scope

error: expected one of `!` or `::`, found `}`
  --> src/lib.rs:9:1
error: aborting due to 2 previous errors

For more information about this error, try `rustc --explain E0425`.
error: could not compile `rustsum` (lib) due to 2 previous errors
"""


def test_gcc_errors_with_file_line_and_column_in_order() -> None:
    assert first_errors(GCC) == [
        "src/broken.c:3:3: error: expected ',' or ';' before 'return'",
        "src/broken.c:5:22: error: 'y' undeclared (first use in this function)",
    ]


def test_clang_errors_without_colour_codes_and_without_the_frontends_words() -> None:
    assert first_errors(CLANG) == [
        "src/fastadd.c:10:27: error: expected ';' at end of declaration",
        "src/fastadd.c:5:22: error: use of undeclared identifier 'y'",
    ]


def test_a_fatal_error_counts() -> None:
    assert first_errors(FATAL) == ["inc.c:1:10: fatal error: 'nothing.h' file not found"]


def test_gnu_ld_undefined_references_with_or_without_a_line() -> None:
    assert first_errors(GNU_LD) == [
        "/src/undef.c:2: undefined reference to `missing'",
        "/usr/bin/ld: undef.c:(.text+0x5): undefined reference to `other'",
        "undef2.c:(.text+0x5): undefined reference to `other'",
    ]


def test_lld_undefined_symbols_name_where_they_are_referenced() -> None:
    assert first_errors(LLD) == [
        "ld.lld: error: undefined symbol: missing (referenced by undef.c:2)",
        "error: undefined symbol: lonely",
    ]


def test_rust_errors_carry_their_location_and_skip_the_summary() -> None:
    assert first_errors(RUST) == [
        "src/lib.rs:1:17: error[E0425]: cannot find value `x` in this scope",
        "src/lib.rs:9:1: error: expected one of `!` or `::`, found `}`",
    ]


def test_the_first_few_only_and_each_once() -> None:
    many = "".join(f"a.c:{n}:1: error: bad {n % 3}\n" for n in range(20)) + GCC
    assert len(first_errors(many)) == 5
    assert first_errors("a.c:1:1: error: x\na.c:1:1: error: x\n") == ["a.c:1:1: error: x"]
    assert first_errors("all good\nwarning: a.c:1:1: warning: w\n") == []


def test_builds_tip_about_options_wheelfarm_lacks_is_dropped() -> None:
    lines = CLANG.splitlines()
    kept = without_noise(lines)
    assert len(kept) == len(lines) - 1
    assert not any("--env-dir" in line for line in kept)
