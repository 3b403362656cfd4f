/* The broker's policy: rules, the check of a request against them, and the
 * operation itself, resolved beneath the rule's directory. */

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin/broker/broker.h"
#include "plugin/broker/broker_wire.h"

typedef struct BrokerRule {
  char* path; /* as given: absolute, plain */
  size_t len;
  unsigned permissions;
  int dirfd;        /* O_PATH: the directory, or the file's directory */
  const char* leaf; /* a file rule: its name in dirfd; NULL if RECURSIVE */
} BrokerRule;

struct BrokerPolicy {
  BrokerRule* rules;
  size_t count;
};

/* Flags a request may carry; anything else is refused. O_PATH, O_TMPFILE,
 * O_DIRECT and the like are not in it. */
#define ALLOWED_OPEN_FLAGS                                                  \
  (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NONBLOCK |         \
   O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_LARGEFILE | O_SYNC | \
   O_DSYNC | O_NOATIME)

BrokerPolicy* broker_policy_new(void) {
  return calloc(1, sizeof(BrokerPolicy));
}

void broker_policy_free(BrokerPolicy* p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->count; i++) {
    close(p->rules[i].dirfd);
    free(p->rules[i].path);
  }
  free(p->rules);
  free(p);
}

/* Absolute; no empty, "." or ".." component; no trailing "/" but for "/". */
static bool is_plain(const char* path, size_t len) {
  if (len == 0 || path[0] != '/')
    return false;
  if (len == 1)
    return true;
  if (path[len - 1] == '/')
    return false;
  const char* p = path + 1;
  const char* end = path + len;
  while (p < end) {
    const char* slash = memchr(p, '/', (size_t)(end - p));
    size_t n = (size_t)((slash != NULL ? slash : end) - p);
    if (n == 0 || (n == 1 && p[0] == '.') ||
        (n == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    p += n + 1;
  }
  return true;
}

int broker_policy_allow(BrokerPolicy* p, const char* path, unsigned perms) {
  if (p == NULL || path == NULL)
    return EINVAL;
  size_t len = strlen(path);
  unsigned known = BROKER_ALLOW_READ | BROKER_ALLOW_WRITE |
                   BROKER_ALLOW_CREATE | BROKER_RECURSIVE;
  if (!is_plain(path, len) || len > BROKER_MAX_PATH || (perms & ~known) ||
      ((perms & BROKER_ALLOW_CREATE) && !(perms & BROKER_ALLOW_WRITE)))
    return EINVAL;
  if ((perms & BROKER_RECURSIVE) == 0 && len == 1)
    return EINVAL; /* "/" can only be a directory rule */
  for (size_t i = 0; i < p->count; i++) {
    if (strcmp(p->rules[i].path, path) == 0)
      return EEXIST; /* one rule per path: no silent precedence */
  }
  BrokerRule r = {0};
  r.path = strdup(path);
  if (r.path == NULL)
    return ENOMEM;
  r.len = len;
  r.permissions = perms;
  if (perms & BROKER_RECURSIVE) {
    r.dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  } else {
    char* slash = strrchr(r.path, '/');
    r.leaf = slash + 1;
    if (slash == r.path) {
      r.dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    } else {
      *slash = '\0';
      r.dirfd = open(r.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
      *slash = '/';
    }
  }
  if (r.dirfd < 0) {
    int error = errno;
    free(r.path);
    return error;
  }
  BrokerRule* rules = realloc(p->rules, (p->count + 1) * sizeof(*rules));
  if (rules == NULL) {
    close(r.dirfd);
    free(r.path);
    return ENOMEM;
  }
  rules[p->count++] = r;
  p->rules = rules;
  return 0;
}

/* The rule covering `path` (the longest), and the rest of the path below
 * its directory. */
static const BrokerRule* find_rule(const BrokerPolicy* p,
                                   const char* path,
                                   size_t len,
                                   const char** rel) {
  const BrokerRule* best = NULL;
  for (size_t i = 0; i < p->count; i++) {
    const BrokerRule* r = &p->rules[i];
    if (best != NULL && r->len <= best->len)
      continue;
    if (r->leaf != NULL) {
      if (len == r->len && memcmp(path, r->path, len) == 0) {
        best = r;
        *rel = r->leaf;
      }
    } else if (r->len == 1) { /* "/" */
      best = r;
      *rel = len == 1 ? "." : path + 1;
    } else if (len >= r->len && memcmp(path, r->path, r->len) == 0 &&
               (len == r->len || path[r->len] == '/')) {
      best = r;
      *rel = len == r->len ? "." : path + r->len + 1;
    }
  }
  /* "a//b" is "a/b": what follows the rule's path starts at a name. */
  while (best != NULL && **rel == '/')
    (*rel)++;
  if (best != NULL && **rel == '\0')
    *rel = ".";
  return best;
}

static void start(BrokerDecision* d, int op, const char* path, int flags) {
  if (d == NULL)
    return;
  d->op = op;
  d->flags = (uint32_t)flags;
  d->path[0] = '\0';
  if (path != NULL) {
    strncpy(d->path, path, sizeof(d->path) - 1);
    d->path[sizeof(d->path) - 1] = '\0';
  }
}

static int decide(BrokerDecision* d, int result, const char* reason) {
  if (d != NULL) {
    d->result = result;
    d->reason = reason;
  }
  return result;
}

/* Checks the path part common to every operation. Returns the rule, or
 * NULL with *error and *reason set. */
static const BrokerRule* check_path(const BrokerPolicy* p,
                                    const char* path,
                                    char normalized[BROKER_MAX_PATH + 2],
                                    const char** rel,
                                    int* error,
                                    const char** reason) {
  size_t len = path != NULL ? strlen(path) : 0;
  if (path == NULL || len == 0 || path[0] != '/') {
    *error = EACCES;
    *reason = "not an absolute path";
    return NULL;
  }
  if (len > BROKER_MAX_PATH) {
    *error = ENAMETOOLONG;
    *reason = "path too long";
    return NULL;
  }
  /* ".." is refused outright, wherever it would lead: a policy is written
   * in plain paths and requests are matched against them as text. */
  const char* end = path + len;
  for (const char* c = path; c < end; c++) {
    if (c[0] == '.' && c[1] == '.' && c[-1] == '/' &&
        (c + 2 == end || c[2] == '/')) {
      *error = EACCES;
      *reason = "a \"..\" component";
      return NULL;
    }
  }
  /* Rules are matched against the path with "." and empty components
   * removed, so that "pub/./sub" and "pub//sub" meet the rule for
   * "pub/sub" as "pub/sub" does. */
  char* norm = normalized;
  size_t n = 0;
  for (const char* c = path; c < end;) {
    while (c < end && *c == '/')
      c++;
    const char* next = memchr(c, '/', (size_t)(end - c));
    size_t part = (size_t)((next != NULL ? next : end) - c);
    if (part == 0 || (part == 1 && c[0] == '.')) {
      c += part;
      continue;
    }
    norm[n++] = '/';
    memcpy(norm + n, c, part);
    n += part;
    c += part;
  }
  if (n == 0)
    norm[n++] = '/';
  else if (end[-1] == '/')
    norm[n++] = '/'; /* "dir/" must still name a directory */
  norm[n] = '\0';
  const BrokerRule* r = find_rule(p, norm, n, rel);
  if (r == NULL) {
    *error = EACCES;
    *reason = "no rule covers the path";
  }
  return r;
}

/* check_path with the refusal decided: the rule, or NULL and *refused
 * (-errno). */
static const BrokerRule* rule_for(const BrokerPolicy* p,
                                  const char* path,
                                  char normalized[BROKER_MAX_PATH + 2],
                                  const char** rel,
                                  BrokerDecision* d,
                                  int* refused) {
  int error = 0;
  const char* reason = NULL;
  const BrokerRule* r = check_path(p, path, normalized, rel, &error, &reason);
  if (r == NULL)
    *refused = decide(d, -error, reason);
  return r;
}

/* openat2 beneath the rule's directory. File rules follow no symbolic link
 * at all (their one name must be the file itself). */
static int open_beneath(const BrokerRule* r,
                        const char* rel,
                        uint64_t flags,
                        uint64_t mode) {
  struct open_how how = {0};
  /* O_PATH takes no other flag but these (openat2 is strict). */
  how.flags = flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY);
  how.mode = mode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  if (r->leaf != NULL)
    how.resolve |= RESOLVE_NO_SYMLINKS;
  /* EAGAIN: a rename or mount raced with the resolution (retry a few
   * times), or a lease is held (give up rather than wait). */
  for (int tries = 0;; tries++) {
    long fd = syscall(SYS_openat2, r->dirfd, rel, &how, sizeof(how));
    if (fd >= 0)
      return (int)fd;
    if (errno != EINTR && (errno != EAGAIN || tries >= 3))
      return -errno;
  }
}

/* Opens for the module: never blocks the thread serving it (a FIFO, a
 * device, a lease), and yields only regular files and directories. An
 * existing file is first reached with O_PATH and checked, so that nothing
 * else is ever opened (a device's open has effects of its own); then it
 * is reopened through /proc/self/fd, which names that same file. */
static int open_for_module(const BrokerRule* r,
                           const char* rel,
                           int flags,
                           mode_t mode,
                           const char** reason) {
  int probe = open_beneath(
      r, rel, O_PATH | (uint64_t)(flags & (O_NOFOLLOW | O_DIRECTORY)), 0);
  if (probe >= 0) {
    struct stat st;
    int error = fstat(probe, &st) != 0 ? -errno : 0;
    if (error == 0 && S_ISLNK(st.st_mode))
      error = -ELOOP; /* O_NOFOLLOW met a link */
    else if (error == 0 && !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
      *reason = "not a regular file or a directory";
      error = -EACCES;
    } else if (error == 0 &&
               (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
      error = -EEXIST;
    }
    if (error != 0) {
      close(probe);
      return error;
    }
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", probe);
    int fd = open(self, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC |
                            O_NOCTTY | O_NONBLOCK);
    error = errno;
    close(probe);
    if (fd < 0 && error != ENOENT)
      return -error; /* ENOENT: no /proc; open beneath once more below */
    if (fd >= 0) {
      if (!(flags & O_NONBLOCK) &&
          fcntl(fd, F_SETFL, flags & ~O_NONBLOCK & ~O_ACCMODE) != 0) {
        error = errno;
        close(fd);
        return -error;
      }
      return fd;
    }
  } else if (probe != -ENOENT || !(flags & O_CREAT)) {
    return probe;
  }
  /* Creating (or no /proc): open beneath, check what it was afterwards. */
  int fd = open_beneath(r, rel, (uint64_t)flags | O_NONBLOCK,
                        (flags & O_CREAT) ? (uint64_t)(mode & 0777) : 0);
  if (fd < 0)
    return fd;
  struct stat st;
  if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    close(fd);
    *reason = "not a regular file or a directory";
    return -EACCES;
  }
  if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

/* Resolution errors that mean "this would leave what the rule allows":
 * EXDEV from RESOLVE_BENEATH, and ELOOP from a file rule's refusal of any
 * symbolic link. */
static bool escaped(const BrokerRule* r, int error) {
  return error == EXDEV || (error == ELOOP && r->leaf != NULL);
}

/* For stat and access: reaches the file with O_PATH (plus `flags`), or
 * decides the failure and returns it (negative). */
static int reach(const BrokerRule* r,
                 const char* rel,
                 int flags,
                 BrokerDecision* d) {
  if (!(r->permissions & (BROKER_ALLOW_READ | BROKER_ALLOW_WRITE)))
    return decide(d, -EACCES, "no access there");
  int fd = open_beneath(r, rel, O_PATH | (uint64_t)flags, 0);
  if (fd >= 0)
    return fd;
  if (escaped(r, -fd))
    return decide(d, -EACCES, "resolution would leave the allowed tree");
  return decide(d, fd, "allowed, but the file could not be reached");
}

int broker_policy_open(const BrokerPolicy* p,
                       const char* path,
                       int flags,
                       mode_t mode,
                       BrokerDecision* d) {
  start(d, BROKER_OP_OPEN, path, flags);
  const char* rel = NULL;
  int refused = 0;
  char normalized[BROKER_MAX_PATH + 2];
  const BrokerRule* r = rule_for(p, path, normalized, &rel, d, &refused);
  if (r == NULL)
    return refused;
  if (flags & ~ALLOWED_OPEN_FLAGS)
    return decide(d, -EINVAL, "flags not allowed (O_PATH, O_TMPFILE...)");
  int acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE)
    return decide(d, -EINVAL, "invalid access mode");
  bool reads = acc == O_RDONLY || acc == O_RDWR;
  bool writes = acc != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
  if (reads && !(r->permissions & BROKER_ALLOW_READ))
    return decide(d, -EACCES, "reading not allowed there");
  if (writes && !(r->permissions & BROKER_ALLOW_WRITE))
    return decide(d, -EACCES, "writing not allowed there");
  if ((flags & O_CREAT) && !(r->permissions & BROKER_ALLOW_CREATE))
    return decide(d, -EACCES, "creating not allowed there");
  const char* why = NULL;
  int fd = open_for_module(r, rel, flags, mode, &why);
  if (fd >= 0)
    return decide(d, fd, "allowed");
  if (why != NULL)
    return decide(d, fd, why);
  if (escaped(r, -fd))
    return decide(d, -EACCES, "resolution would leave the allowed tree");
  return decide(d, fd, "allowed, but the open failed");
}

int broker_policy_stat(const BrokerPolicy* p,
                       const char* path,
                       int flags,
                       struct stat* st,
                       BrokerDecision* d) {
  start(d, BROKER_OP_STAT, path, flags);
  const char* rel = NULL;
  int refused = 0;
  char normalized[BROKER_MAX_PATH + 2];
  const BrokerRule* r = rule_for(p, path, normalized, &rel, d, &refused);
  if (r == NULL)
    return refused;
  if (flags & ~AT_SYMLINK_NOFOLLOW)
    return decide(d, -EINVAL, "flags not allowed");
  int fd = reach(r, rel, (flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0, d);
  if (fd < 0)
    return fd;
  int r2 = fstat(fd, st) == 0 ? 0 : -errno;
  close(fd);
  return decide(d, r2, r2 == 0 ? "allowed" : "fstat failed");
}

int broker_policy_access(const BrokerPolicy* p,
                         const char* path,
                         int amode,
                         BrokerDecision* d) {
  start(d, BROKER_OP_ACCESS, path, amode);
  const char* rel = NULL;
  int refused = 0;
  char normalized[BROKER_MAX_PATH + 2];
  const BrokerRule* r = rule_for(p, path, normalized, &rel, d, &refused);
  if (r == NULL)
    return refused;
  if (amode & ~(R_OK | W_OK | X_OK))
    return decide(d, -EINVAL, "unknown access mode");
  if (amode & X_OK)
    return decide(d, -EACCES, "execution is never brokered");
  if ((amode & R_OK) && !(r->permissions & BROKER_ALLOW_READ))
    return decide(d, -EACCES, "reading not allowed there");
  if ((amode & W_OK) && !(r->permissions & BROKER_ALLOW_WRITE))
    return decide(d, -EACCES, "writing not allowed there");
  int fd = reach(r, rel, 0, d);
  if (fd < 0)
    return fd;
  /* The file's own permission bits, for the host's identity. */
  int result =
      amode == F_OK || faccessat(fd, "", amode, AT_EMPTY_PATH | AT_EACCESS) == 0
          ? 0
          : -errno;
  close(fd);
  return decide(d, result, result == 0 ? "allowed" : "the file refuses it");
}

size_t broker_handle_request(const BrokerPolicy* p,
                             const uint8_t* request,
                             size_t len,
                             uint8_t* reply,
                             int* out_fd,
                             BrokerDecision* d) {
  *out_fd = -1;
  BrokerRequest req;
  int error = broker_decode_request(request, len, &req);
  if (error != 0) {
    start(d, 0, NULL, 0);
    decide(d, -error, "malformed request");
    return broker_encode_reply(-error, NULL, reply);
  }
  int result;
  struct stat st;
  bool with_stat = false;
  switch (req.op) {
    case BROKER_OP_OPEN:
      result =
          broker_policy_open(p, req.path, (int)req.flags, (mode_t)req.mode, d);
      if (result >= 0) {
        *out_fd = result;
        result = 0;
      }
      break;
    case BROKER_OP_STAT:
      result = broker_policy_stat(p, req.path, (int)req.flags, &st, d);
      with_stat = result == 0;
      break;
    default:
      result = broker_policy_access(p, req.path, (int)req.flags, d);
      break;
  }
  return broker_encode_reply(result, with_stat ? &st : NULL, reply);
}
