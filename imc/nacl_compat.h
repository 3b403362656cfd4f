/* Native Client's names for the imc types and constants, so that code
 * written against NaCl's <nacl/nacl_imc.h> / imc_types.h ports by changing
 * an include. Only names: the values are this layer's (imc/imc.h), which
 * are Native Client's except where docs/imc.md says otherwise (descriptors
 * per message: 253, not 8). */

#ifndef IMC_NACL_COMPAT_H_
#define IMC_NACL_COMPAT_H_

#include "imc/imc.h"

#define NaClAbiNaClImcMsgIoVec NaClImcMsgIoVec
#define NaClAbiNaClImcMsgHdr NaClImcMsgHdr

#define NACL_ABI_IMC_IOVEC_MAX IMC_MAX_IOVECS
#define NACL_ABI_IMC_USER_DESC_MAX IMC_MAX_DESCRIPTORS
#define NACL_ABI_IMC_DESC_MAX IMC_MAX_DESCRIPTORS
#define NACL_ABI_IMC_USER_BYTES_MAX IMC_MAX_DATA_BYTES
#define NACL_ABI_IMC_BYTES_MAX IMC_MAX_DATA_BYTES
#define NACL_ABI_IMC_NONBLOCK IMC_NONBLOCK
#define NACL_ABI_RECVMSG_DATA_TRUNCATED RECVMSG_DATA_TRUNCATED
#define NACL_ABI_RECVMSG_DESC_TRUNCATED RECVMSG_DESC_TRUNCATED
#define NACL_ABI_IMC_INVALID_DESC IMC_INVALID_DESCRIPTOR

#endif /* IMC_NACL_COMPAT_H_ */
