#ifndef CPGNOTI_OPENSSL_SHIM_H
#define CPGNOTI_OPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#endif
