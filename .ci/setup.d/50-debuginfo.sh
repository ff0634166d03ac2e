# Debug info: eu-strip (elfutils) splits every module's DWARF off by build-id;
# debuginfod-find and gdb fetch it back from `wheelfarm serve` in the tests.
apt_install elfutils debuginfod gdb
