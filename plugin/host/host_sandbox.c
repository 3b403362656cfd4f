/* The module sandbox: a seccomp-bpf filter installed in the child just
 * before exec. It refuses, with EACCES, every system call that opens a
 * file by name or changes the file system by name, plus the calls that
 * reach outside the process by other roads (sockets of any family but the
 * descriptors it was given, ptrace, io_uring, bpf...). docs/broker.md
 * lists them. Metadata calls (stat, access, readlink) stay allowed. */

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "plugin/host/host_internal.h"

#if defined(__x86_64__)
#define SANDBOX_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SANDBOX_ARCH

static const int kDenied[] = {
/* Opening files by name. */
#ifdef __NR_open
    __NR_open,
#endif
#ifdef __NR_creat
    __NR_creat,
#endif
    __NR_openat,
#ifdef __NR_openat2
    __NR_openat2,
#endif
    __NR_open_by_handle_at,
    __NR_name_to_handle_at,
#ifdef __NR_uselib
    __NR_uselib,
#endif
/* Changing the file system by name. */
#ifdef __NR_mkdir
    __NR_mkdir,
#endif
    __NR_mkdirat,
#ifdef __NR_mknod
    __NR_mknod,
#endif
    __NR_mknodat,
#ifdef __NR_rmdir
    __NR_rmdir,
#endif
#ifdef __NR_unlink
    __NR_unlink,
#endif
    __NR_unlinkat,
#ifdef __NR_rename
    __NR_rename,
#endif
#ifdef __NR_renameat
    __NR_renameat,
#endif
    __NR_renameat2,
#ifdef __NR_link
    __NR_link,
#endif
    __NR_linkat,
#ifdef __NR_symlink
    __NR_symlink,
#endif
    __NR_symlinkat,
#ifdef __NR_chmod
    __NR_chmod,
#endif
    __NR_fchmodat,
#ifdef __NR_chown
    __NR_chown,
#endif
#ifdef __NR_lchown
    __NR_lchown,
#endif
    __NR_fchownat,
    __NR_truncate,
#ifdef __NR_utime
    __NR_utime,
#endif
#ifdef __NR_utimes
    __NR_utimes,
#endif
#ifdef __NR_futimesat
    __NR_futimesat,
#endif
    __NR_utimensat,
    __NR_chdir,
    __NR_chroot,
    __NR_mount,
    __NR_umount2,
    __NR_pivot_root,
#ifdef __NR_open_tree
    __NR_open_tree,
    __NR_move_mount,
    __NR_fsopen,
    __NR_fsconfig,
    __NR_fsmount,
    __NR_fspick,
#endif
    /* Other roads out. */
    __NR_socket,
    __NR_ptrace,
    __NR_process_vm_readv,
    __NR_process_vm_writev,
    __NR_bpf,
    __NR_perf_event_open,
    __NR_userfaultfd,
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup,
#endif
    __NR_keyctl,
    __NR_add_key,
    __NR_request_key,
    __NR_setns,
    __NR_unshare,
    __NR_inotify_add_watch,
    __NR_fanotify_init,
};

#define NUM_DENIED (sizeof(kDenied) / sizeof(kDenied[0]))

size_t host_sandbox_filter(struct sock_filter* out, size_t cap) {
  size_t need = 4 + 2 * NUM_DENIED + 1
#ifdef __x86_64__
                + 2
#endif
      ;
  if (cap < need)
    return 0;
  size_t n = 0;
  /* Another architecture's calls (a 32-bit entry point) are killed: their
   * numbers mean other things. */
  out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          SANDBOX_ARCH, 1, 0);
  out[n++] =
      (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
  /* The x32 ABI shares the architecture value: refuse it wholesale. */
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
                                          0x40000000u, 0, 1);
  out[n++] =
      (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
#endif
  for (size_t i = 0; i < NUM_DENIED; i++) {
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            (unsigned)kDenied[i], 0, 1);
    out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                            SECCOMP_RET_ERRNO | EACCES);
  }
  out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  return n;
}

int host_sandbox_enter(const struct sock_filter* filter, size_t n) {
  struct sock_fprog prog = {(unsigned short)n,
                            (struct sock_filter*)(uintptr_t)filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return errno;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
    return errno;
  return 0;
}

#else /* no SANDBOX_ARCH */

size_t host_sandbox_filter(struct sock_filter* out, size_t cap) {
  (void)out;
  (void)cap;
  return 0;
}

int host_sandbox_enter(const struct sock_filter* filter, size_t n) {
  (void)filter;
  (void)n;
  return ENOSYS;
}

#endif
