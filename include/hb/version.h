#ifndef HB_VERSION_H
#define HB_VERSION_H
#define HB_VERSION "0.1.0"
#endif
