// Every kernel piece is compiled once per SIMD variant, inside that variant's namespace
// (umfa::cpu::<variant>) and an anonymous namespace in it: no symbol compiled for one instruction
// set can be picked by the linker for another. The variant's .cpp defines UMFA_KNS before it
// includes its primitives file and flash_attention.h.
#pragma once

#ifndef UMFA_KNS
#error "define UMFA_KNS (the variant's namespace) before including the CPU kernel pieces"
#endif

#define UMFA_KERNELS_BEGIN \
  namespace umfa {         \
  namespace cpu {          \
  namespace UMFA_KNS {     \
  namespace {
#define UMFA_KERNELS_END \
  }                      \
  }                      \
  }                      \
  }
