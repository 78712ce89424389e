// The model's VM module compiled to C (iree-compile --output-format=vm-c),
// for WAND_MODULE_FORMAT=emitc builds: CMakeLists.txt names the generated
// header (WAND_EMITC_MODULE_HEADER); this file holds its implementation, the
// module's functions and its rodata (the weights and the dispatches' embedded
// ELFs) as C arrays. It defines module_create (runtime_iree.c).

#define EMITC_IMPLEMENTATION
#include WAND_EMITC_MODULE_HEADER
