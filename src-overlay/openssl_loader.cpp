// openssl_loader.cpp: see openssl_loader.h.

#include "openssl_loader.h"

#include <type_traits>

#include <dlfcn.h>

namespace tls {

namespace {

std::string dl_problem(const char* what) {
  const char* e = dlerror();
  return std::string(what) + ": " + (e != nullptr ? e : "unknown error");
}

}  // namespace

Loaded load_openssl_from(const char* libssl, const char* libcrypto, OpenSsl& table) {
  // libcrypto first, so that a broken libcrypto is named as such
  void* crypto = dlopen(libcrypto, RTLD_NOW | RTLD_LOCAL);
  if (crypto == nullptr) return {nullptr, dl_problem("cannot load OpenSSL")};
  void* ssl = dlopen(libssl, RTLD_NOW | RTLD_LOCAL);
  if (ssl == nullptr) {
    Loaded failed{nullptr, dl_problem("cannot load OpenSSL")};
    dlclose(crypto);
    return failed;
  }

  OpenSsl t;
  const char* missing = nullptr;
  auto resolve = [&](auto& fn, const char* name) {
    void* p = dlsym(ssl, name);
    if (p == nullptr) p = dlsym(crypto, name);
    if (p == nullptr && missing == nullptr) missing = name;
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
#define QT_OPENSSL_RESOLVE(name) resolve(t.name, #name);
  QT_OPENSSL_FUNCTIONS(QT_OPENSSL_RESOLVE)
#undef QT_OPENSSL_RESOLVE
  if (missing != nullptr) {
    dlclose(ssl);
    dlclose(crypto);
    return {nullptr, std::string("OpenSSL lacks ") + missing + " (" + libssl + ")"};
  }
  table = t;
  return {&table, {}};
}

Loaded load_openssl() {
  static OpenSsl table;
  static bool loaded = false;
  if (loaded) return {&table, {}};
  Loaded l = load_openssl_from("libssl.so.3", "libcrypto.so.3", table);
  loaded = l.lib != nullptr;
  return l;
}

}  // namespace tls
