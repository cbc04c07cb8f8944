// Op cases: cat and stack, and the view methods of Tensor (view, reshape, permute, transpose, slice, select,
// unsqueeze, squeeze, expand, flatten, contiguous, to(dtype)), each against an index-mapping reference.
#include <functional>

#include "src/ops/elementwise.h"
#include "src/ops/shape.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// out[i] = in[map(i)] for every multi-index i of out_shape: the reference of any view.
RefArray remap(const RefArray& in, const Shape& out_shape, const std::function<Index(const Index&)>& map) {
  RefArray out(out_shape);
  Index idx(out_shape.size(), 0);
  for (std::int64_t k = 0; k < out.numel(); ++k) {
    out[k] = in[flat_of(in.shape, map(idx))];
    for (std::size_t d = out_shape.size(); d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Row-major reinterpretation (view, reshape, flatten, unsqueeze, squeeze).
RefArray reshaped(const RefArray& in, const Shape& shape) {
  RefArray out = in;
  out.shape = shape;
  return out;
}

RefArray permuted(const RefArray& in, const Index& order) {
  Shape shape(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) shape[i] = in.shape[static_cast<std::size_t>(order[i])];
  return remap(in, shape, [&](const Index& o) {
    Index src(o.size());
    for (std::size_t i = 0; i < order.size(); ++i) src[static_cast<std::size_t>(order[i])] = o[i];
    return src;
  });
}

// Concatenation along d of inputs with equal sizes elsewhere.
RefArray cat_ref(const Rs& xs, std::size_t d) {
  Shape shape = xs[0].shape;
  shape[d] = 0;
  for (const auto& x : xs) shape[d] += x.shape[d];
  RefArray out(shape);
  Index idx(shape.size(), 0);
  for (std::int64_t k = 0; k < out.numel(); ++k) {
    Index src = idx;
    std::size_t which = 0;
    while (src[d] >= xs[which].shape[d]) src[d] -= xs[which++].shape[d];
    out[k] = xs[which][flat_of(xs[which].shape, src)];
    for (std::size_t e = shape.size(); e-- > 0;) {
      if (++idx[e] < shape[e]) break;
      idx[e] = 0;
    }
  }
  return out;
}

RefArray stack_ref(const Rs& xs, std::size_t d) {
  Rs unsqueezed;
  for (const auto& x : xs) {
    Shape s = x.shape;
    s.insert(s.begin() + static_cast<std::ptrdiff_t>(d), 1);
    unsqueezed.push_back(reshaped(x, s));
  }
  return cat_ref(unsqueezed, d);
}

}  // namespace

LOCKSTEP_OP_CASES(shape) {
  std::vector<OpCase> cases;
  auto add = [&](std::string name, std::vector<InputSpec> inputs, std::function<Tensor(const Ts&)> fn,
                 std::function<RefArray(const Rs&)> ref) {
    cases.push_back({name, inputs, fn, ref});
  };

  // cat
  add(
      "shape.cat/dim0", {uniform({2, 3}), uniform({4, 3})},
      [](const Ts& x) {
        return cat({x[0], x[1]}, 0);
      },
      [](const Rs& x) { return cat_ref(x, 0); });
  add(
      "shape.cat/dim1_three", {uniform({2, 1, 3}), uniform({2, 4, 3}), uniform({2, 2, 3})},
      [](const Ts& x) { return cat(x, 1); }, [](const Rs& x) { return cat_ref(x, 1); });
  add(
      "shape.cat/negative_dim", {uniform({3, 2}), uniform({3, 5})}, [](const Ts& x) { return cat(x, -1); },
      [](const Rs& x) { return cat_ref(x, 1); });
  add(
      "shape.cat/transposed_input", {uniform({3, 4}), uniform({4, 2})},
      [](const Ts& x) {
        return cat({x[0].transpose(0, 1), x[1]}, 1);
      },
      [](const Rs& x) {
        return cat_ref({permuted(x[0], {1, 0}), x[1]}, 1);
      });
  add(
      "shape.cat/same_tensor_twice", {uniform({2, 3})},
      [](const Ts& x) {
        return cat({x[0], x[0] * 2.0}, 0);
      },
      [](const Rs& x) {
        return cat_ref({x[0], ref_map(x[0], [](double v) { return 2.0 * v; })}, 0);
      });

  // stack
  add(
      "shape.stack/dim0", {uniform({2, 3}), uniform({2, 3}), uniform({2, 3})},
      [](const Ts& x) { return stack(x, 0); }, [](const Rs& x) { return stack_ref(x, 0); });
  add(
      "shape.stack/middle", {uniform({2, 3}), uniform({2, 3})}, [](const Ts& x) { return stack(x, 1); },
      [](const Rs& x) { return stack_ref(x, 1); });
  add(
      "shape.stack/negative_dim", {uniform({3, 2}), uniform({3, 2})},
      [](const Ts& x) { return stack(x, -1); }, [](const Rs& x) { return stack_ref(x, 2); });
  add(
      "shape.stack/scalars", {uniform({}), uniform({}), uniform({})}, [](const Ts& x) { return stack(x); },
      [](const Rs& x) { return stack_ref(x, 0); });
  add(
      "shape.stack/sliced_inputs", {uniform({4, 3})},
      [](const Ts& x) {
        return stack({x[0].select(1, 0), x[0].select(1, 2)}, 1);
      },
      [](const Rs& x) {
        return remap(x[0], {4, 2}, [](const Index& o) { return Index{o[0], o[1] * 2}; });
      });

  // views
  add(
      "shape.view/merge", {uniform({2, 3, 4})},
      [](const Ts& x) {
        return x[0].view({6, 4});
      },
      [](const Rs& x) {
        return reshaped(x[0], {6, 4});
      });
  add(
      "shape.reshape/infer", {uniform({2, 3, 4})},
      [](const Ts& x) {
        return x[0].reshape({4, -1});
      },
      [](const Rs& x) {
        return reshaped(x[0], {4, 6});
      });
  add(
      "shape.reshape/non_contiguous", {uniform({3, 4})},
      [](const Ts& x) {
        return x[0].transpose(0, 1).reshape({2, 6});
      },
      [](const Rs& x) {
        return reshaped(permuted(x[0], {1, 0}), {2, 6});
      });
  add(
      "shape.permute/3d", {uniform({2, 3, 4})},
      [](const Ts& x) {
        return x[0].permute({2, 0, 1});
      },
      [](const Rs& x) {
        return permuted(x[0], {2, 0, 1});
      });
  add(
      "shape.permute/negative", {uniform({2, 3, 2})},
      [](const Ts& x) {
        return x[0].permute({-1, -3, 1});
      },
      [](const Rs& x) {
        return permuted(x[0], {2, 0, 1});
      });
  add(
      "shape.transpose/negative", {uniform({2, 3, 4})}, [](const Ts& x) { return x[0].transpose(-1, 0); },
      [](const Rs& x) {
        return permuted(x[0], {2, 1, 0});
      });
  add(
      "shape.slice/step", {uniform({7, 3})}, [](const Ts& x) { return x[0].slice(0, 1, 7, 2); },
      [](const Rs& x) {
        return remap(x[0], {3, 3}, [](const Index& o) { return Index{1 + 2 * o[0], o[1]}; });
      });
  add(
      "shape.slice/negative_bounds", {uniform({3, 8})}, [](const Ts& x) { return x[0].slice(1, -6, -1, 3); },
      [](const Rs& x) {
        return remap(x[0], {3, 2}, [](const Index& o) { return Index{o[0], 2 + 3 * o[1]}; });
      });
  add(
      "shape.slice/of_transpose", {uniform({4, 5})},
      [](const Ts& x) { return x[0].transpose(0, 1).slice(1, 1, 3); },
      [](const Rs& x) {
        return remap(x[0], {5, 2}, [](const Index& o) { return Index{1 + o[1], o[0]}; });
      });
  add(
      "shape.select/middle", {uniform({2, 3, 4})}, [](const Ts& x) { return x[0].select(1, -1); },
      [](const Rs& x) {
        return remap(x[0], {2, 4}, [](const Index& o) { return Index{o[0], 2, o[1]}; });
      });
  add(
      "shape.select/twice", {uniform({3, 4})}, [](const Ts& x) { return x[0].select(0, 2).select(0, 1); },
      [](const Rs& x) { return remap(x[0], {}, [](const Index&) {
                          return Index{2, 1};
                        }); });
  add(
      "shape.unsqueeze/middle", {uniform({3, 4})}, [](const Ts& x) { return x[0].unsqueeze(1); },
      [](const Rs& x) {
        return reshaped(x[0], {3, 1, 4});
      });
  add(
      "shape.unsqueeze/negative", {uniform({3, 4})},
      [](const Ts& x) { return x[0].transpose(0, 1).unsqueeze(-1); },
      [](const Rs& x) {
        return reshaped(permuted(x[0], {1, 0}), {4, 3, 1});
      });
  add(
      "shape.squeeze/size_one", {uniform({3, 1, 4})}, [](const Ts& x) { return x[0].squeeze(1); },
      [](const Rs& x) {
        return reshaped(x[0], {3, 4});
      });
  add(
      "shape.squeeze/not_one_is_identity", {uniform({3, 2})}, [](const Ts& x) { return x[0].squeeze(0); },
      [](const Rs& x) { return x[0]; });
  add(
      "shape.expand/broadcast", {uniform({3, 1})},
      [](const Ts& x) {
        return x[0].expand({2, 3, 4});
      },
      [](const Rs& x) {
        return remap(x[0], {2, 3, 4}, [](const Index& o) { return Index{o[1], 0}; });
      });
  add(
      "shape.expand/then_mul", {uniform({1, 4}), uniform({3, 4})},
      [](const Ts& x) {
        return x[0].expand({3, 4}) * x[1];
      },
      [](const Rs& x) { return ref_map2(x[0], x[1], [](double a, double b) { return a * b; }); });
  add(
      "shape.flatten/middle", {uniform({2, 3, 4, 2})}, [](const Ts& x) { return x[0].flatten(1, 2); },
      [](const Rs& x) {
        return reshaped(x[0], {2, 12, 2});
      });
  add(
      "shape.flatten/all_of_permuted", {uniform({2, 3, 2})},
      [](const Ts& x) {
        return x[0].permute({2, 0, 1}).flatten();
      },
      [](const Rs& x) {
        return reshaped(permuted(x[0], {2, 0, 1}), {12});
      });
  add(
      "shape.contiguous/transposed", {uniform({3, 4})},
      [](const Ts& x) { return x[0].transpose(0, 1).contiguous(); },
      [](const Rs& x) {
        return permuted(x[0], {1, 0});
      });
  add(
      "shape.to_dtype/to_f64", {uniform({2, 5})},
      [](const Ts& x) { return x[0].transpose(0, 1).to(DType::f64); },
      [](const Rs& x) {
        return permuted(x[0], {1, 0});
      });
  // Through f32 and back: the reference rounds to float too; small inputs keep the f32 rounding of the finite
  // differences (half an ulp, ~1e-11 here) far below the gradient tolerance.
  OpCase round_trip{"shape.to_dtype/through_f32",
                    {uniform({3, 3}, 2e-4, 4e-4)},
                    [](const Ts& x) { return (x[0].to(DType::f32) * 3.0).to(DType::f64); },
                    [](const Rs& x) {
                      return ref_map(
                          x[0], [](double v) { return static_cast<double>(static_cast<float>(v) * 3.0f); });
                    }};
  round_trip.grad_rtol = 1e-3;
  cases.push_back(round_trip);
  return cases;
}

}  // namespace lockstep::test
