// mapped_box.h: one object in its own anonymous mapping.
//
// For the few-KiB objects a session needs only briefly (the limits table
// reader, a lookup): freed, their pages go back to the system whole, which
// heap memory does not do reliably. A held teergrube session then keeps no
// private pages for them.

#ifndef QT_MAPPED_BOX_H
#define QT_MAPPED_BOX_H

#include <cstddef>
#include <new>
#include <utility>

#include <sys/mman.h>

template <class T>
class MappedBox {
 public:
  MappedBox() = default;
  ~MappedBox() { reset(); }
  MappedBox(const MappedBox&) = delete;
  MappedBox& operator=(const MappedBox&) = delete;

  // Constructs a T in a new mapping; false when there is no memory.
  template <class... Args>
  bool emplace(Args&&... args) noexcept {
    reset();
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    object_ = new (p) T(std::forward<Args>(args)...);
    return true;
  }

  void reset() noexcept {
    if (object_ == nullptr) return;
    object_->~T();
    munmap(object_, sizeof(T));
    object_ = nullptr;
  }

  explicit operator bool() const noexcept { return object_ != nullptr; }
  T& operator*() const noexcept { return *object_; }
  T* operator->() const noexcept { return object_; }

 private:
  T* object_ = nullptr;
};

#endif
