/* Export macro of libgeokv: only symbols marked GEOKV_EXPORT leave the shared library
 * (the library is built with -fvisibility=hidden and a linker version script). */
#ifndef GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_EXPORT_H_
#define GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_EXPORT_H_

#if defined(GEOKV_BUILDING_LIBRARY)
#define GEOKV_EXPORT __attribute__((visibility("default")))
#else
#define GEOKV_EXPORT
#endif

#endif /* GEOKV_CAPI_INCLUDE_GEOKV_GEOKV_EXPORT_H_ */
