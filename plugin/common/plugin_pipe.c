/* The message pipe: an unlimited send queue drained by a writer thread, a
 * receive queue filled by a reader thread up to a window. */

#include "plugin/common/plugin_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/common/plugin_frame.h"
#include "plugin/common/plugin_time.h"

typedef struct OutItem {
  struct OutItem* next;
  uint8_t* data;
  size_t len;
  int* fds; /* ours (duplicates); closed once the first datagram is out */
  size_t num_fds;
  size_t offset; /* message bytes already sent */
  bool begun;    /* the first datagram (with the descriptors) is out */
} OutItem;

typedef struct InItem {
  struct InItem* next;
  PluginMessage msg;
} InItem;

struct PluginPipe {
  int fd;
  PluginPipeConfig config;
  size_t max_bytes;
  pthread_mutex_t mu;
  pthread_cond_t in_cv;   /* receive queue: consumers */
  pthread_cond_t room_cv; /* receive queue: the reader, when it is full */
  bool reader_waiting;
  pthread_cond_t out_cv; /* send queue: the writer */
  bool stopping;

  OutItem* out_head;
  OutItem* out_tail;
  size_t out_bytes;
  size_t out_count;
  size_t quota; /* 0: none */
  bool over_quota;
  bool writer_started;
  bool writer_busy; /* sending out_head without the lock */
  bool send_failed;
  int send_error;
  pthread_t writer;

  InItem* in_head;
  InItem* in_tail;
  size_t in_bytes;
  size_t in_count;
  size_t in_fds;
  bool armed;
  bool closed; /* the reader has ended */
  int close_error;
  pthread_t reader;
};

static void close_fds(int* fds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
  }
}

static void free_out_item(OutItem* item) {
  if (!item->begun)
    close_fds(item->fds, item->num_fds);
  free(item->fds);
  free(item->data);
  free(item);
}

/* Sends the rest of `item`. Returns 1 when all of it is out, 0 if the
 * socket would block (IMC_NONBLOCK only), -1 with errno on failure. */
static int send_item(PluginPipe* p, OutItem* item, int flags) {
  if (p->config.mode == PLUGIN_PIPE_RAW) {
    struct NaClImcMsgIoVec iov = {item->data, item->len};
    struct NaClImcMsgHdr hdr = {&iov, item->len ? 1u : 0u, item->fds,
                                item->num_fds, 0};
    if (imc_sendmsg(p->fd, &hdr, flags) < 0)
      return errno == EAGAIN ? 0 : -1;
    item->begun = true;
    item->offset = item->len;
    return 1;
  }
  while (!item->begun || item->offset < item->len) {
    uint8_t header[PLUGIN_FRAME_HEADER_BYTES];
    size_t chunk = plugin_frame_header(header, item->len, item->offset);
    struct NaClImcMsgIoVec iov[2] = {
        {header, sizeof(header)},
        {chunk ? item->data + item->offset : NULL, chunk}};
    struct NaClImcMsgHdr hdr = {iov, chunk ? 2u : 1u,
                                item->begun ? NULL : item->fds,
                                item->begun ? 0 : item->num_fds, 0};
    if (imc_sendmsg(p->fd, &hdr, flags) < 0)
      return errno == EAGAIN ? 0 : -1;
    item->begun = true;
    item->offset += chunk;
  }
  return 1;
}

/* With mu held: the peer can take nothing more. */
static void fail_sending(PluginPipe* p, int error) {
  p->send_failed = true;
  p->send_error = error;
  while (p->out_head != NULL) {
    OutItem* item = p->out_head;
    p->out_head = item->next;
    free_out_item(item);
  }
  p->out_tail = NULL;
  p->out_bytes = 0;
  p->out_count = 0;
}

static void* writer_main(void* arg) {
  PluginPipe* p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stopping && p->out_head == NULL)
      pthread_cond_wait(&p->out_cv, &p->mu);
    if (p->stopping)
      break;
    OutItem* item = p->out_head;
    p->writer_busy = true;
    pthread_mutex_unlock(&p->mu);
    int r = send_item(p, item, 0);
    int error = errno;
    /* Shortages pass: the kernel's buffers (ENOBUFS, ENOMEM) and its limit
     * on descriptors in flight (ETOOMANYREFS) free up as the peer reads.
     * Try again shortly rather than fail the channel. */
    while (r < 0 && (error == ENOBUFS || error == ENOMEM ||
                     error == ETOOMANYREFS || error == EAGAIN)) {
      pthread_mutex_lock(&p->mu);
      bool stop = p->stopping;
      pthread_mutex_unlock(&p->mu);
      if (stop)
        break;
      usleep(10000);
      r = send_item(p, item, 0);
      error = errno;
    }
    if (r < 0 && item->begun)
      shutdown(p->fd, SHUT_RDWR); /* half a message is out: end it */
    pthread_mutex_lock(&p->mu);
    p->writer_busy = false;
    if (r == 1) {
      p->out_head = item->next;
      if (p->out_head == NULL)
        p->out_tail = NULL;
      p->out_bytes -= item->len;
      p->out_count--;
      /* Re-armed at half the quota, so that a queue hovering around the
       * quota does not notify on every message. */
      if (p->over_quota && p->out_bytes <= p->quota / 2)
        p->over_quota = false;
      free_out_item(item);
    } else {
      fail_sending(p, error);
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Queues a received message; waits while the queue is full. False if out
 * of memory (the message is freed). */
static bool deliver(PluginPipe* p, PluginMessage* m) {
  InItem* item = malloc(sizeof(*item));
  if (item == NULL) {
    plugin_message_free(m);
    return false;
  }
  item->next = NULL;
  item->msg = *m;
  pthread_mutex_lock(&p->mu);
  if (p->in_tail != NULL)
    p->in_tail->next = item;
  else
    p->in_head = item;
  p->in_tail = item;
  p->in_bytes += m->len;
  p->in_count++;
  p->in_fds += m->num_fds;
  bool fire = p->armed;
  p->armed = false;
  pthread_cond_broadcast(&p->in_cv);
  pthread_mutex_unlock(&p->mu);
  if (fire && p->config.notify != NULL)
    p->config.notify(p->config.user);
  pthread_mutex_lock(&p->mu);
  while (!p->stopping && (p->in_bytes >= PLUGIN_PIPE_RECEIVE_WINDOW ||
                          p->in_count >= PLUGIN_PIPE_RECEIVE_MESSAGES ||
                          p->in_fds >= PLUGIN_PIPE_RECEIVE_DESCRIPTORS)) {
    p->reader_waiting = true;
    pthread_cond_wait(&p->room_cv, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return true;
}

enum { kReceiveBuffer = IMC_MAX_DATA_BYTES };

static void* reader_main(void* arg) {
  PluginPipe* p = arg;
  uint8_t* buf = malloc(kReceiveBuffer);
  int fds[IMC_MAX_DESCRIPTORS];
  PluginReassembly r;
  plugin_reassembly_init(&r, p->max_bytes);
  int error = buf == NULL ? ENOMEM : 0;
  while (error == 0) {
    struct NaClImcMsgIoVec iov = {buf, kReceiveBuffer};
    struct NaClImcMsgHdr hdr = {&iov, 1, fds, IMC_MAX_DESCRIPTORS, 0};
    int n = imc_recvmsg(p->fd, &hdr, 0);
    if (n < 0) {
      error = errno;
      break;
    }
    if (n == 0 && hdr.desc_length == 0 && hdr.flags == 0) {
      if (r.started)
        error = EPROTO; /* the peer left in the middle of a message */
      break;
    }
    PluginMessage m = {0};
    if (p->config.mode == PLUGIN_PIPE_RAW) {
      if (hdr.flags & (RECVMSG_DATA_TRUNCATED | RECVMSG_DESC_TRUNCATED)) {
        close_fds(fds, hdr.desc_length);
        error = EMSGSIZE;
        break;
      }
      m.len = (size_t)n;
      m.data = n > 0 ? malloc((size_t)n) : NULL;
      m.num_fds = hdr.desc_length;
      m.fds = m.num_fds > 0 ? malloc(m.num_fds * sizeof(int)) : NULL;
      if ((n > 0 && m.data == NULL) || (m.num_fds > 0 && m.fds == NULL)) {
        close_fds(fds, hdr.desc_length);
        free(m.data);
        free(m.fds);
        error = ENOMEM;
        break;
      }
      if (n > 0)
        memcpy(m.data, buf, (size_t)n);
      if (m.num_fds > 0)
        memcpy(m.fds, fds, m.num_fds * sizeof(int));
    } else {
      int got = plugin_reassembly_feed(&r, buf, (size_t)n, fds, hdr.desc_length,
                                       hdr.flags);
      if (got < 0) {
        error = errno;
        break;
      }
      if (got == 0)
        continue;
      plugin_reassembly_take(&r, &m);
    }
    if (!deliver(p, &m)) {
      error = ENOMEM;
      break;
    }
    pthread_mutex_lock(&p->mu);
    bool stop = p->stopping;
    pthread_mutex_unlock(&p->mu);
    if (stop)
      break;
  }
  plugin_reassembly_reset(&r);
  free(buf);
  /* After an error nothing more is read: shut the socket so that the
   * peer learns (its sends fail) instead of queueing forever. */
  if (error != 0)
    shutdown(p->fd, SHUT_RDWR);
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  p->close_error = error;
  bool fire = p->armed;
  p->armed = false;
  pthread_cond_broadcast(&p->in_cv);
  pthread_mutex_unlock(&p->mu);
  if (fire && p->config.notify != NULL)
    p->config.notify(p->config.user);
  return NULL;
}

PluginPipe* plugin_pipe_new(int fd, const PluginPipeConfig* config) {
  PluginPipe* p = calloc(1, sizeof(*p));
  if (p == NULL) {
    close(fd);
    return NULL;
  }
  p->fd = fd;
  p->config = *config;
  p->max_bytes = config->max_message_bytes ? config->max_message_bytes
                                           : PLUGIN_DEFAULT_MAX_MESSAGE_BYTES;
  if (p->config.mode == PLUGIN_PIPE_RAW)
    p->max_bytes = IMC_MAX_DATA_BYTES;
  p->armed = true;
  pthread_mutex_init(&p->mu, NULL);
  plugin_cond_init(&p->in_cv);
  pthread_cond_init(&p->room_cv, NULL);
  pthread_cond_init(&p->out_cv, NULL);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (config->for_process_lifetime)
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int created = pthread_create(&p->reader, &attr, reader_main, p);
  pthread_attr_destroy(&attr);
  if (created != 0) {
    pthread_cond_destroy(&p->out_cv);
    pthread_cond_destroy(&p->room_cv);
    pthread_cond_destroy(&p->in_cv);
    pthread_mutex_destroy(&p->mu);
    close(fd);
    free(p);
    return NULL;
  }
  return p;
}

void plugin_pipe_free(PluginPipe* p) {
  if (p == NULL)
    return;
  pthread_mutex_lock(&p->mu);
  p->stopping = true;
  pthread_cond_broadcast(&p->in_cv);
  pthread_cond_broadcast(&p->room_cv);
  pthread_cond_broadcast(&p->out_cv);
  bool writer = p->writer_started;
  pthread_mutex_unlock(&p->mu);
  shutdown(p->fd, SHUT_RDWR); /* ends blocked sends and receives */
  pthread_join(p->reader, NULL);
  if (writer)
    pthread_join(p->writer, NULL);
  pthread_mutex_lock(&p->mu);
  fail_sending(p, EPIPE);
  pthread_mutex_unlock(&p->mu);
  while (p->in_head != NULL) {
    InItem* item = p->in_head;
    p->in_head = item->next;
    plugin_message_free(&item->msg);
    free(item);
  }
  close(p->fd);
  pthread_cond_destroy(&p->out_cv);
  pthread_cond_destroy(&p->room_cv);
  pthread_cond_destroy(&p->in_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* With mu held: starts the writer thread. */
static bool start_writer_locked(PluginPipe* p) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (p->config.for_process_lifetime)
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int created = pthread_create(&p->writer, &attr, writer_main, p);
  pthread_attr_destroy(&attr);
  if (created != 0)
    return false;
  p->writer_started = true;
  return true;
}

/* A queue entry holding a copy of the message and of its descriptors.
 * Returns a PluginResult. */
static int make_item(const void* data,
                     size_t len,
                     const int* fds,
                     size_t num_fds,
                     OutItem** out) {
  OutItem* item = calloc(1, sizeof(*item));
  uint8_t* copy = len > 0 ? malloc(len) : NULL;
  int* dups = num_fds > 0 ? malloc(num_fds * sizeof(int)) : NULL;
  if (item == NULL || (len > 0 && copy == NULL) ||
      (num_fds > 0 && dups == NULL)) {
    free(item);
    free(copy);
    free(dups);
    return PLUGIN_ERROR_NO_MEMORY;
  }
  for (size_t i = 0; i < num_fds; i++) {
    dups[i] = fds[i] == -1 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (dups[i] < 0 && fds[i] != -1) {
      int result = errno == EMFILE || errno == ENFILE
                       ? PLUGIN_ERROR_NO_DESCRIPTORS
                       : PLUGIN_ERROR_SYSTEM;
      close_fds(dups, i);
      free(item);
      free(copy);
      free(dups);
      return result;
    }
  }
  if (len > 0)
    memcpy(copy, data, len);
  item->data = copy;
  item->len = len;
  item->fds = dups;
  item->num_fds = num_fds;
  *out = item;
  return PLUGIN_OK;
}

static void free_unsent(OutItem* item) {
  if (item != NULL)
    free_out_item(item);
}

int plugin_pipe_send(PluginPipe* p,
                     const void* data,
                     size_t len,
                     const int* fds,
                     size_t num_fds) {
  size_t max =
      p->config.mode == PLUGIN_PIPE_RAW ? IMC_MAX_DATA_BYTES : p->max_bytes;
  if ((len > 0 && data == NULL) || (num_fds > 0 && fds == NULL) || len > max ||
      len > UINT32_MAX || num_fds > PLUGIN_MAX_MESSAGE_DESCRIPTORS ||
      (p->config.mode == PLUGIN_PIPE_RAW && len == 0 && num_fds == 0))
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  for (size_t i = 0; i < num_fds; i++) {
    if (fds[i] != -1 && fcntl(fds[i], F_GETFD) < 0)
      return PLUGIN_ERROR_INVALID_ARGUMENT;
  }
  /* A message of several datagrams could be cut after its first ones if
   * the copy for the rest could not be made then: its copy is made first,
   * so that a lack of memory is reported with nothing sent. One datagram
   * goes whole or not at all, and is copied only if it has to wait. */
  OutItem* item = NULL;
  if (p->config.mode != PLUGIN_PIPE_RAW && len > PLUGIN_FRAME_MAX_CHUNK) {
    int made = make_item(data, len, fds, num_fds, &item);
    if (made != PLUGIN_OK)
      return made;
  }
  OutItem now = {
      NULL, (uint8_t*)(uintptr_t)data, len, (int*)(uintptr_t)fds, num_fds, 0,
      false};
  pthread_mutex_lock(&p->mu);
  if (p->send_failed) {
    pthread_mutex_unlock(&p->mu);
    free_unsent(item);
    return PLUGIN_ERROR_CLOSED;
  }
  if (item != NULL && !p->writer_started && !start_writer_locked(p)) {
    /* Whatever of it went now, the rest would have no writer. */
    pthread_mutex_unlock(&p->mu);
    free_out_item(item);
    return PLUGIN_ERROR_NO_MEMORY;
  }
  if (p->out_head == NULL && !p->writer_busy) {
    /* Nothing ahead of it: try the socket without waiting. */
    int r = send_item(p, &now, IMC_NONBLOCK);
    if (r == 1) {
      pthread_mutex_unlock(&p->mu);
      free_unsent(item);
      return PLUGIN_OK;
    }
    if (r < 0) {
      int error = errno;
      if (error == EPIPE || error == ECONNRESET || now.begun) {
        if (now.begun)
          shutdown(p->fd, SHUT_RDWR); /* half a message is out */
        fail_sending(p, error);
        pthread_mutex_unlock(&p->mu);
        free_unsent(item);
        return PLUGIN_ERROR_CLOSED;
      }
      pthread_mutex_unlock(&p->mu);
      free_unsent(item);
      return error == EMFILE || error == ENFILE || error == ETOOMANYREFS
                 ? PLUGIN_ERROR_NO_DESCRIPTORS
             : error == ENOMEM || error == ENOBUFS ? PLUGIN_ERROR_NO_MEMORY
                                                   : PLUGIN_ERROR_SYSTEM;
    }
  }
  if (item == NULL) {
    /* One datagram, nothing of it sent. */
    int made = make_item(data, len, fds, num_fds, &item);
    if (made != PLUGIN_OK) {
      pthread_mutex_unlock(&p->mu);
      return made;
    }
  }
  if (now.begun) {
    /* Part of it is out, its descriptors with the first datagram: the
     * queue continues at the offset. */
    close_fds(item->fds, item->num_fds);
    free(item->fds);
    item->fds = NULL;
    item->num_fds = 0;
    item->begun = true;
    item->offset = now.offset;
  }
  bool resume = now.begun;
  if (!p->writer_started && !start_writer_locked(p)) {
    /* Without a writer nothing would ever drain: report it. */
    if (resume) {
      shutdown(p->fd, SHUT_RDWR);
      fail_sending(p, EAGAIN);
    }
    pthread_mutex_unlock(&p->mu);
    free_out_item(item);
    return PLUGIN_ERROR_NO_MEMORY;
  }
  if (p->out_tail != NULL)
    p->out_tail->next = item;
  else
    p->out_head = item;
  p->out_tail = item;
  p->out_bytes += item->len;
  p->out_count++;
  bool fire = false;
  if (p->quota > 0 && !p->over_quota && p->out_bytes > p->quota) {
    p->over_quota = true;
    fire = true;
  }
  size_t queued = p->out_bytes;
  pthread_cond_signal(&p->out_cv);
  pthread_mutex_unlock(&p->mu);
  if (fire && p->config.over_quota != NULL)
    p->config.over_quota(queued, p->config.user);
  return PLUGIN_OK;
}

size_t plugin_pipe_queued_bytes(PluginPipe* p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->out_bytes;
  pthread_mutex_unlock(&p->mu);
  return n;
}

size_t plugin_pipe_queued_messages(PluginPipe* p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->out_count;
  pthread_mutex_unlock(&p->mu);
  return n;
}

void plugin_pipe_set_quota(PluginPipe* p, size_t bytes) {
  pthread_mutex_lock(&p->mu);
  p->quota = bytes;
  p->over_quota = bytes > 0 && p->out_bytes > bytes;
  pthread_mutex_unlock(&p->mu);
}

/* With mu held. */
static int pop_locked(PluginPipe* p, PluginMessage* out, int* close_error) {
  InItem* item = p->in_head;
  if (item != NULL) {
    p->in_head = item->next;
    if (p->in_head == NULL)
      p->in_tail = NULL;
    p->in_bytes -= item->msg.len;
    p->in_count--;
    p->in_fds -= item->msg.num_fds;
    *out = item->msg;
    free(item);
    /* Wake a waiting reader once half the window is free, not on every
     * message: one wake-up per half window instead of one per message. */
    if (p->reader_waiting && p->in_bytes <= PLUGIN_PIPE_RECEIVE_WINDOW / 2 &&
        p->in_count <= PLUGIN_PIPE_RECEIVE_MESSAGES / 2 &&
        p->in_fds <= PLUGIN_PIPE_RECEIVE_DESCRIPTORS / 2) {
      p->reader_waiting = false;
      pthread_cond_signal(&p->room_cv);
    }
    return 1;
  }
  if (p->closed) {
    if (close_error != NULL)
      *close_error = p->close_error;
    return -1;
  }
  return 0;
}

int plugin_pipe_pop(PluginPipe* p, PluginMessage* out, int* close_error) {
  pthread_mutex_lock(&p->mu);
  int r = pop_locked(p, out, close_error);
  if (r == 0)
    p->armed = true;
  pthread_mutex_unlock(&p->mu);
  return r;
}

int plugin_pipe_pop_wait(PluginPipe* p,
                         PluginMessage* out,
                         int* close_error,
                         int timeout_ms,
                         SrpcCancel* cancel) {
  struct timespec deadline;
  if (timeout_ms >= 0)
    deadline = plugin_deadline_after(timeout_ms);
  SrpcCancelWaiter waiter = {&p->mu, &p->in_cv, NULL};
  if (cancel != NULL)
    srpc_cancel_add_waiter(cancel, &waiter);
  pthread_mutex_lock(&p->mu);
  int r;
  for (;;) {
    r = pop_locked(p, out, close_error);
    if (r != 0)
      break;
    if (cancel != NULL && srpc_cancel_is_signalled(cancel)) {
      r = -PLUGIN_ERROR_CANCELLED;
      break;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&p->in_cv, &p->mu);
    } else if (pthread_cond_timedwait(&p->in_cv, &p->mu, &deadline) ==
               ETIMEDOUT) {
      r = pop_locked(p, out, close_error);
      if (r == 0)
        r = -PLUGIN_ERROR_TIMED_OUT;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (cancel != NULL)
    srpc_cancel_remove_waiter(cancel, &waiter);
  return r;
}
