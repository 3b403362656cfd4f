/* A cancellation flag: an atomic bit for the waits that check it, an
 * eventfd for the waits that poll, and a list of condition variables to
 * broadcast for the waits that sleep on one. */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "srpc/srpc_channel_internal.h"

struct SrpcCancel {
  pthread_mutex_t mu; /* the list; taken before any waiter's mutex */
  atomic_bool signalled;
  int fd;
  SrpcCancelWaiter* waiters;
};

SrpcCancel* srpc_cancel_new(void) {
  SrpcCancel* c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->fd < 0) {
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  atomic_init(&c->signalled, false);
  return c;
}

void srpc_cancel_free(SrpcCancel* c) {
  if (c == NULL)
    return;
  close(c->fd);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

void srpc_cancel_signal(SrpcCancel* c) {
  pthread_mutex_lock(&c->mu);
  if (!atomic_exchange(&c->signalled, true)) {
    uint64_t one = 1;
    (void)!write(c->fd, &one, sizeof(one));
  }
  /* Taking each waiter's mutex orders the broadcast after its check of the
   * flag: a waiter either saw the flag or is asleep and gets woken. */
  for (SrpcCancelWaiter* w = c->waiters; w != NULL; w = w->next) {
    pthread_mutex_lock(w->mu);
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->mu);
  }
  pthread_mutex_unlock(&c->mu);
}

void srpc_cancel_reset(SrpcCancel* c) {
  pthread_mutex_lock(&c->mu);
  if (atomic_exchange(&c->signalled, false)) {
    uint64_t count;
    (void)!read(c->fd, &count, sizeof(count));
  }
  pthread_mutex_unlock(&c->mu);
}

int srpc_cancel_is_signalled(const SrpcCancel* c) {
  return atomic_load(&((SrpcCancel*)(uintptr_t)c)->signalled) ? 1 : 0;
}

int srpc_cancel_fd(const SrpcCancel* c) {
  return c->fd;
}

void srpc_cancel_add_waiter(SrpcCancel* c, SrpcCancelWaiter* w) {
  pthread_mutex_lock(&c->mu);
  w->next = c->waiters;
  c->waiters = w;
  pthread_mutex_unlock(&c->mu);
}

void srpc_cancel_remove_waiter(SrpcCancel* c, SrpcCancelWaiter* w) {
  pthread_mutex_lock(&c->mu);
  for (SrpcCancelWaiter** p = &c->waiters; *p != NULL; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  pthread_mutex_unlock(&c->mu);
}
