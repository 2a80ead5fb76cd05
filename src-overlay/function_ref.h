// function_ref.h: a non-owning reference to something callable.
//
// For callbacks that run during one call and are not kept (the store's
// read-modify-write of a record, its write transactions). Unlike
// std::function it never allocates and needs no exceptions; the callable
// must outlive the call it is passed to.

#ifndef QT_FUNCTION_REF_H
#define QT_FUNCTION_REF_H

#include <memory>
#include <type_traits>
#include <utility>

template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> && std::is_invocable_r_v<R, F&, Args...>)
  FunctionRef(F&& f) noexcept  // NOLINT: implicit, like a plain function argument
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

#endif
