// imc_mem_obj_create and imc_mem_obj_size.

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "imc/imc.h"
#include "imc/imc_test_util.h"
#include "testing/harness/child_process.h"

namespace {

const size_t kSize = IMC_MEM_OBJ_GRANULARITY;

TEST(ImcShmTest, RejectsSizesThatAreNotWholeUnits) {
  for (size_t size : {size_t{0}, size_t{1}, kSize - 1, kSize + 4096}) {
    errno = 0;
    EXPECT_EQ(-1, imc_mem_obj_create(size)) << size;
    EXPECT_EQ(EINVAL, errno) << size;
  }
  errno = 0;
  EXPECT_EQ(-1, imc_mem_obj_create(SIZE_MAX - kSize + 1));
  EXPECT_EQ(EFBIG, errno);
}

TEST(ImcShmTest, IsZeroFilledSizedSealedAndCloseOnExec) {
  int fd = imc_mem_obj_create(4 * kSize);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(imc_test::IsCloseOnExec(fd));
  size_t size = 0;
  ASSERT_EQ(0, imc_mem_obj_size(fd, &size));
  EXPECT_EQ(4 * kSize, size);
  auto* p = static_cast<unsigned char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(MAP_FAILED, p);
  for (size_t i = 0; i < size; i++)
    ASSERT_EQ(0, p[i]) << i;
  munmap(p, size);
  // Nobody can change the size: a receiver may rely on it.
  EXPECT_EQ(-1, ftruncate(fd, 0));
  EXPECT_EQ(EPERM, errno);
  EXPECT_EQ(-1, ftruncate(fd, static_cast<off_t>(8 * kSize)));
  EXPECT_EQ(EPERM, errno);
  close(fd);
}

TEST(ImcShmTest, SizeRefusesDescriptorsThatAreNotSizeSealedMemory) {
  size_t size = 0;
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  errno = 0;
  EXPECT_EQ(-1, imc_mem_obj_size(p[0], &size));
  EXPECT_EQ(EINVAL, errno);
  int loose = memfd_create("loose", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  errno = 0;
  EXPECT_EQ(-1, imc_mem_obj_size(loose, &size));
  EXPECT_EQ(EINVAL, errno);
  errno = 0;
  EXPECT_EQ(-1, imc_mem_obj_size(1000, &size));
  EXPECT_EQ(EBADF, errno);
  close(loose);
  close(p[0]);
  close(p[1]);
}

TEST(ImcShmTest, WritesAreSeenAcrossProcesses) {
  int fd = imc_mem_obj_create(kSize);
  ASSERT_GE(fd, 0);
  auto* p = static_cast<volatile unsigned char*>(
      mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(MAP_FAILED, p);
  pid_t pid = harness::ForkChild([p] {
    // Wait for the parent's byte, answer with its successor.
    for (int i = 0; i < 10000 && p[100] != 42; i++)
      usleep(1000);
    if (p[100] != 42)
      return 1;
    p[kSize - 1] = 43;
    return 0;
  });
  ASSERT_GT(pid, 0);
  p[100] = 42;
  EXPECT_TRUE(harness::ExitedWithCode(harness::WaitForChild(pid, 20000), 0));
  EXPECT_EQ(43, p[kSize - 1]);
  munmap(const_cast<unsigned char*>(p), kSize);
  close(fd);
}

}  // namespace
