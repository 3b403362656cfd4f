/* imc_demo: a host process and a module process talking over imc.
 *
 * The host makes a BoundSocket and starts this same program as a module,
 * handing it only the SocketAddress (descriptor 3). The module connects with
 * confirmation, sends a greeting with a shared memory object attached, and
 * the host answers with the write end of a pipe that the module writes to.
 * Each step is printed; the exit status is 0 only if every step worked. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imc/imc.h"

#define SHM_SIZE IMC_MEM_OBJ_GRANULARITY

static int fail(const char* who, const char* what) {
  fprintf(stderr, "[%s] %s failed: %s\n", who, what, strerror(errno));
  return 1;
}

static int send_one(int fd, const char* text, int desc) {
  struct NaClImcMsgIoVec iov = {(void*)(size_t)text, strlen(text)};
  struct NaClImcMsgHdr msg = {&iov, 1, &desc, desc >= 0 ? 1u : 0u, 0};
  return imc_sendmsg(fd, &msg, 0);
}

/* Receives a message into buf (NUL-terminated) and at most one descriptor. */
static int recv_one(int fd, char* buf, size_t size, int* desc) {
  struct NaClImcMsgIoVec iov = {buf, size - 1};
  struct NaClImcMsgHdr msg = {&iov, 1, desc, 1, 0};
  *desc = -1;
  int n = imc_recvmsg(fd, &msg, 0);
  buf[n > 0 ? n : 0] = '\0';
  if (msg.desc_length == 0)
    *desc = -1;
  return n;
}

static int run_module(void) {
  const int address = 3;
  int conn = imc_connect_ex(address, IMC_CONNECT_CONFIRM, 5000);
  if (conn < 0)
    return fail("module", "connect");
  printf("[module] connected to the host; the host confirmed it accepted\n");
  int shm = imc_mem_obj_create(SHM_SIZE);
  if (shm < 0)
    return fail("module", "imc_mem_obj_create");
  char* p = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
  if (p == MAP_FAILED)
    return fail("module", "mmap");
  snprintf(p, SHM_SIZE, "written by the module (pid %d) into shared memory",
           (int)getpid());
  munmap(p, SHM_SIZE);
  if (send_one(conn, "hello, host", shm) < 0)
    return fail("module", "send");
  close(shm);

  char buf[256];
  int pipe_end;
  if (recv_one(conn, buf, sizeof(buf), &pipe_end) <= 0 || pipe_end < 0)
    return fail("module", "receive");
  printf("[module] got \"%s\" with a descriptor\n", buf);
  const char line[] = "a line the module wrote into the host's pipe\n";
  if (write(pipe_end, line, sizeof(line) - 1) != (ssize_t)(sizeof(line) - 1))
    return fail("module", "write to the pipe");
  close(pipe_end);
  close(conn);
  return 0;
}

static int run_host(const char* self) {
  int bound_and_address[2];
  if (imc_makeboundsock(bound_and_address) != 0)
    return fail("host", "imc_makeboundsock");
  pid_t pid = fork();
  if (pid == 0) {
    /* Only the SocketAddress goes to the module, as descriptor 3. */
    int address = bound_and_address[1];
    /* dup2 onto itself would keep close-on-exec: clear it instead. */
    if ((address == 3 ? fcntl(3, F_SETFD, 0) : dup2(address, 3)) < 0)
      _exit(126);
    execl(self, self, "--module", (char*)NULL);
    _exit(127);
  }
  close(bound_and_address[1]);
  printf("[host] started module pid %d with the SocketAddress as fd 3\n",
         (int)pid);

  int conn = imc_accept(bound_and_address[0]);
  if (conn < 0)
    return fail("host", "accept");
  char buf[256];
  int shm;
  if (recv_one(conn, buf, sizeof(buf), &shm) <= 0 || shm < 0)
    return fail("host", "receive");
  size_t size = 0;
  if (imc_mem_obj_size(shm, &size) != 0)
    return fail("host", "imc_mem_obj_size");
  const char* text = mmap(NULL, size, PROT_READ, MAP_SHARED, shm, 0);
  if (text == MAP_FAILED)
    return fail("host", "mmap");
  printf("[host] got \"%s\" and a %zu-byte shared memory object: \"%s\"\n", buf,
         size, text);
  munmap((void*)(size_t)text, size);
  close(shm);

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0 || send_one(conn, "here is a pipe", p[1]) < 0)
    return fail("host", "send");
  close(p[1]);
  ssize_t n = read(p[0], buf, sizeof(buf) - 1);
  buf[n > 0 ? n : 0] = '\0';
  printf("[host] read from the pipe: %s", buf);
  close(p[0]);

  /* After the module closes, its end reads as end of stream (not an error),
   * and the bound socket reports that no connection can come any more. */
  int status = 0;
  waitpid(pid, &status, 0);
  int eof = recv_one(conn, buf, sizeof(buf), &shm);
  printf(
      "[host] module exited with %d; its connection now reads %d bytes "
      "(end of stream)\n",
      WIFEXITED(status) ? WEXITSTATUS(status) : -1, eof);
  close(conn);
  if (imc_accept(bound_and_address[0]) < 0 && errno == EPIPE)
    printf("[host] accept: %s (every SocketAddress is closed)\n",
           strerror(EPIPE));
  close(bound_and_address[0]);
  int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && eof == 0;
  printf("%s\n", ok ? "imc demo: OK" : "imc demo: FAILED");
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 1 && strcmp(argv[1], "--module") == 0)
    return run_module();
  return run_host("/proc/self/exe");
}
