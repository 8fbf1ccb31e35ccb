/work/main/guest-sdk/wire/target/release/deps/wdiamond_wire-637682319ad43de5.d: src/lib.rs

/work/main/guest-sdk/wire/target/release/deps/libwdiamond_wire-637682319ad43de5.rlib: src/lib.rs

/work/main/guest-sdk/wire/target/release/deps/libwdiamond_wire-637682319ad43de5.rmeta: src/lib.rs

src/lib.rs:
