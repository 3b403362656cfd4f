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
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    __NR_setxattr,
    __NR_lsetxattr,
    __NR_removexattr,
    __NR_lremovexattr,
    /* Changing the metadata of files it was given. */
    __NR_fchmod,
    __NR_fchown,
    __NR_fsetxattr,
    __NR_fremovexattr,
    /* Other roads out: new sockets, naming one, other processes (their
     * memory, their descriptors), namespaces, kernel objects by name. */
    __NR_socket,
    __NR_bind,
    __NR_connect,
    __NR_listen,
    __NR_accept,
    __NR_accept4,
    __NR_tkill,
    __NR_pidfd_open,
    __NR_pidfd_getfd,
    __NR_pidfd_send_signal,
    __NR_process_madvise,
    __NR_mq_open,
    __NR_mq_unlink,
    __NR_msgget,
    __NR_msgsnd,
    __NR_msgrcv,
    __NR_msgctl,
    __NR_semget,
    __NR_semop,
    __NR_semtimedop,
    __NR_semctl,
    __NR_shmget,
    __NR_shmat,
    __NR_shmctl,
    /* Other processes by pid, where no self-only form is needed. */
    __NR_setpriority,
    __NR_ioprio_set,
    __NR_kcmp,
    /* The system as a whole (refused by the kernel unless privileged). */
    __NR_init_module,
    __NR_finit_module,
    __NR_delete_module,
    __NR_kexec_load,
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
    __NR_reboot,
    __NR_swapon,
    __NR_swapoff,
    __NR_acct,
    __NR_settimeofday,
    __NR_clock_settime,
    __NR_adjtimex,
    __NR_clock_adjtime,
    __NR_sethostname,
    __NR_setdomainname,
    __NR_quotactl,
    __NR_syslog,
    __NR_vhangup,
#ifdef __NR_iopl
    __NR_iopl,
    __NR_ioperm,
#endif
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

/* The highest system call number this filter knows (Linux 6.1's). Newer
 * calls may do anything the list above refuses: they get ENOSYS. */
#define LAST_KNOWN_SYSCALL 450

/* Stands for the module's process id in the filter until
 * host_sandbox_enter, in the child, puts the real one there. */
#define PID_PLACEHOLDER 0xfffffff0u

#define NS_FLAGS                                                              \
  (CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | \
   CLONE_NEWUTS | CLONE_NEWCGROUP)

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

size_t host_sandbox_filter(struct sock_filter* out, size_t cap) {
  size_t need = 4 + 2 * NUM_DENIED + 2 + 5 * 4 + 6 * 8 + 5 * 2 + 5 + 6 + 3
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
  /* clone3's flags are in memory, out of the filter's reach: ENOSYS makes
   * the C library fall back to clone, whose flags it can see. */
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          __NR_clone3, 0, 1);
  out[n++] =
      (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  /* Calls allowed with some arguments only. Each block returns, so the
   * accumulator holds the call number again for the next. */
  const struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  const struct sock_filter deny =
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
  /* Signals to itself only (not 0: that is its process group, the
   * host's too). */
  const int self_only[] = {__NR_kill, __NR_tgkill, __NR_rt_sigqueueinfo,
                           __NR_rt_tgsigqueueinfo};
  for (size_t i = 0; i < sizeof(self_only) / sizeof(self_only[0]); i++) {
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            (unsigned)self_only[i], 0, 4);
    out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                            (unsigned)ARG_LO(0));
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            PID_PLACEHOLDER, 0, 1);
    out[n++] = allow;
    out[n++] = deny;
  }
  /* Acting on a process by pid: itself (its pid, or 0) only. */
  const int self_or_zero[] = {
      __NR_prlimit64,      __NR_sched_setaffinity, __NR_sched_setscheduler,
      __NR_sched_setparam, __NR_sched_setattr,     __NR_migrate_pages,
      __NR_move_pages,     __NR_get_robust_list,
  };
  for (size_t i = 0; i < sizeof(self_or_zero) / sizeof(self_or_zero[0]); i++) {
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            (unsigned)self_or_zero[i], 0, 5);
    out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                            (unsigned)ARG_LO(0));
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            PID_PLACEHOLDER, 0, 1);
    out[n++] = allow;
    out[n++] = deny;
  }
  /* No input pushed into a terminal it inherited. */
  const unsigned tty_requests[] = {TIOCSTI, TIOCLINUX};
  for (size_t i = 0; i < 2; i++) {
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            __NR_ioctl, 0, 4);
    out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                            (unsigned)ARG_LO(1));
    out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                            tty_requests[i], 0, 1);
    out[n++] = deny;
    out[n++] =
        i == 0 ? (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                              offsetof(struct seccomp_data, nr))
               : allow;
  }
  /* Threads and processes, but no new namespaces. */
  out[n++] =
      (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
  out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          (unsigned)ARG_LO(0));
  out[n++] =
      (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1);
  out[n++] = deny;
  out[n++] = allow;
  /* Socket pairs of the IMC kind only: a datagram socket could send to a
   * named socket (sendto with an address), a sequenced-packet one cannot. */
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          __NR_socketpair, 0, 5);
  out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          (unsigned)ARG_LO(1));
  out[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf);
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          SOCK_SEQPACKET, 0, 1);
  out[n++] = allow;
  out[n++] = deny;
  /* Calls newer than the list. */
  out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K,
                                          LAST_KNOWN_SYSCALL, 0, 1);
  out[n++] =
      (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  out[n++] = allow;
  return n;
}

int host_sandbox_enter(struct sock_filter* filter, size_t n) {
  /* The filter is this process's own copy (after fork): put its id in. */
  unsigned self = (unsigned)getpid();
  for (size_t i = 0; i < n; i++) {
    if (filter[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
        filter[i].k == PID_PLACEHOLDER)
      filter[i].k = self;
  }
  struct sock_fprog prog = {(unsigned short)n, filter};
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

int host_sandbox_enter(struct sock_filter* filter, size_t n) {
  (void)filter;
  (void)n;
  return ENOSYS;
}

#endif
