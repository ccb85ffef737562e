// Chooses the SIMD path at run time from what the CPU (and the OS) support.
#pragma once

#include <string>
#include <vector>

#include "common.h"

namespace fastgru {

// Paths this build contains that this machine can run, best first.
std::vector<const KernelTable*> supported_paths();

// The path new PackedWeights use: the best supported, unless FASTGRU_SIMD names another
// or select_path() was called. Throws std::invalid_argument for an unknown or unsupported name.
const KernelTable& active_path();
void select_path(const std::string& name);

// Every path compiled into this build, supported here or not.
std::vector<std::string> compiled_paths();

}  // namespace fastgru
