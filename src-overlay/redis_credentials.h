// redis_credentials.h: the Redis password, from a file only its users can
// read.
//
// control/throttlestorepassword, first line: the password of the default
// user, or of the user named in control/throttlestore (redis://USER@...).
// It must not be readable or writable by others (mode 0400 or 0440, owned
// by the user qmail-smtpd runs as, or group-readable by it): a file that is
// is refused - the store is then unavailable and control/throttlefail
// decides - rather than used. No file: no AUTH. The password is never
// logged; buffers that held it are wiped.

#ifndef QT_REDIS_CREDENTIALS_H
#define QT_REDIS_CREDENTIALS_H

#include <string>

#include "store.h"

namespace redis_credentials {

inline constexpr const char* default_path = "control/throttlestorepassword";

// out: the password ("" when the file does not exist).
store::Result read_password(const std::string& path, std::string& out);

}  // namespace redis_credentials

#endif
