// ThreadSanitizer suppressions built into the socket tests (TSan reads them in addition to
// any TSAN_OPTIONS suppressions file).
//
// Why: Debian's libzmq and libsodium are not built with TSan. libzmq hands messages between
// its I/O thread and ours through lock-free pipes synchronised by atomics TSan cannot see,
// so every byte of a received message (copied, or decrypted by libsodium under CURVE, in
// libzmq's thread) looks racy when our thread reads it. Races in our own code have neither
// library in either stack and are still reported.
extern "C" __attribute__((visibility("default"), used)) const char* __tsan_default_suppressions() {
  return "called_from_lib:libzmq.so\n"
         "race:libzmq.so\n"
         "race:crypto_secretbox*\n"
         "race:crypto_box*\n";
}
