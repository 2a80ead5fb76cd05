// tls: the cipher configuration split, loading OpenSSL at run time, and
// what prepare() says when it cannot work. Handshakes are tested at the SMTP
// level (tests/smtp/test_starttls.py) against the real qmail-smtpd.
#include <gtest/gtest.h>

#include "allocation_count.h"
#include "openssl_loader.h"
#include "smtpd_tls.h"
#include "tls.h"

TEST(TlsCiphers, SplitByVersion) {
  auto c = tls::split_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384\n!aNULL, TLS_CHACHA20_POLY1305_SHA256");
  EXPECT_EQ(c.tls12, "ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL");
  EXPECT_EQ(c.tls13, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
}

TEST(TlsCiphers, EmptyPartsKeepDefaults) {
  auto c = tls::split_ciphers("");
  EXPECT_EQ(c.tls12, "");
  EXPECT_EQ(c.tls13, "");
  c = tls::split_ciphers("DEFAULT:@SECLEVEL=0\n\n");
  EXPECT_EQ(c.tls12, "DEFAULT:@SECLEVEL=0");
  EXPECT_EQ(c.tls13, "");
}

// SNI: only plain DNS names reach the file system, folded to lower case.
TEST(TlsSni, HostNamesMapToFilesAndNothingElseDoes) {
  EXPECT_EQ(tls::sni_file_name("mail.example.com"), "mail.example.com.pem");
  EXPECT_EQ(tls::sni_file_name("MAIL.Example.COM"), "mail.example.com.pem");
  EXPECT_EQ(tls::sni_file_name("xn--bcher-kva.example"), "xn--bcher-kva.example.pem");
  EXPECT_EQ(tls::sni_file_name("localhost"), "localhost.pem");
  for (const char* bad : {"", "..", "../servercert", "a/b", "a..b", ".a", "a.", "a b", "a\\b", "*.example.com",
                          "a_b.example", "caf\xc3\xa9.example"})
    EXPECT_EQ(tls::sni_file_name(bad), "") << bad;
  EXPECT_EQ(tls::sni_file_name(std::string(253, 'a')), std::string(253, 'a') + ".pem");
  EXPECT_EQ(tls::sni_file_name(std::string(254, 'a')), "");
  EXPECT_EQ(tls::sni_file_name(std::string_view("a\0b", 3)), "");
}

TEST(OpenSslLoader, MissingLibraryIsAnError) {
  tls::OpenSsl table;
  auto l = tls::load_openssl_from("libssl-none.so.99", "libcrypto-none.so.99", table);
  EXPECT_EQ(l.lib, nullptr);
  EXPECT_NE(l.error.find("cannot load OpenSSL"), std::string::npos) << l.error;
}

TEST(OpenSslLoader, ALibraryWithoutTheFunctionsIsAnError) {
  tls::OpenSsl table;
  auto l = tls::load_openssl_from("libm.so.6", "libm.so.6", table);
  EXPECT_EQ(l.lib, nullptr);
  EXPECT_NE(l.error.find("OpenSSL lacks OPENSSL_init_ssl"), std::string::npos) << l.error;
}

TEST(OpenSslLoader, ResolvesEveryFunctionBySoname) {
  auto l = tls::load_openssl();
  ASSERT_NE(l.lib, nullptr) << l.error;
  EXPECT_NE(l.lib->SSL_CTX_ctrl, nullptr);
  EXPECT_NE(l.lib->ERR_get_error, nullptr);  // from libcrypto
  EXPECT_EQ(tls::load_openssl().lib, l.lib);  // loaded once
}

TEST(TlsServer, MissingCertificateIsReported) {
  tls::Server s;
  tls::Settings settings;
  settings.certificate = "/nonexistent/servercert.pem";
  EXPECT_FALSE(s.prepare(settings));
  EXPECT_NE(s.error().find("cannot use /nonexistent/servercert.pem"), std::string::npos) << s.error();
  EXPECT_FALSE(s.active());
  char buf[4];
  EXPECT_EQ(s.read(1, buf, sizeof buf), -1);
}

TEST(TlsServer, CiphersOpenSslRejectsAreReported) {
  tls::Server s;
  tls::Settings settings;
  settings.ciphers = "NO-SUCH-CIPHER";
  EXPECT_FALSE(s.prepare(settings));
  EXPECT_NE(s.error().find("no usable TLS 1.2 cipher in \"NO-SUCH-CIPHER\""), std::string::npos) << s.error();
  tls::Server t;
  settings.ciphers = "TLS_NO_SUCH_SUITE";
  EXPECT_FALSE(t.prepare(settings));
  EXPECT_NE(t.error().find("no usable TLS 1.3 suite"), std::string::npos) << t.error();
}

// Every qmail-smtpd session asks whether TLS is active (at each write): a
// session that never starts TLS must not build or allocate anything for it
// (the first allocation costs a process brk calls, a getrandom and page
// faults).
TEST(TlsServer, ASessionWithoutTlsAllocatesNothing) {
  const std::size_t before = allocation_count::now();
  {
    tls::Settings settings;
    tls::Server server;
    EXPECT_FALSE(server.active());
  }
  EXPECT_EQ(smtpd_tls_active(), 0);
  EXPECT_EQ(allocation_count::now(), before);
}
