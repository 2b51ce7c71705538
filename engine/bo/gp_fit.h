/* gp_fit: maximum a posteriori hyperparameters of a GP (log marginal likelihood plus Gamma log
 * priors), by multi-start L-BFGS on the log-parameters (NLopt) with analytic gradients. */
#ifndef BOENGINE_GP_FIT_H
#define BOENGINE_GP_FIT_H

#include "bo/gp.h"
#include "core/rng.h"

/* Gamma(shape, rate) priors; shape and rate 0 mean no prior on that group. */
typedef struct gp_prior {
    double ls_shape, ls_rate;       /* each lengthscale; default Gamma(3, 6) */
    double os_shape, os_rate;       /* the outputscale; default Gamma(2, 0.15) */
    double noise_shape, noise_rate; /* the learned noise level; default Gamma(1.1, 0.05) */
} gp_prior;

typedef struct gp_fit_options {
    gp_prior prior;
    int restarts;    /* random starts after the first, as scikit-learn's n_restarts_optimizer (default 2) */
    int maxeval;     /* objective evaluations per start (default 200) */
    double ftol_rel; /* relative tolerance on the objective (default 1e-9) */
} gp_fit_options;

gp_prior gp_prior_default(void);
gp_prior gp_prior_none(void);
void gp_fit_defaults(gp_fit_options *o);
/* 0 when each group has no prior or a Gamma prior with finite shape and rate > 0; otherwise -1 with
 * err_set naming the group as an option key ("priors.lengthscale: ..."). */
int gp_prior_check(const gp_prior *p);

/* Log prior density of the hyperparameter vector theta (gp_get_theta's layout), and when grad is
 * not NULL its gradient with respect to theta. */
double gp_log_prior(const gp *g, const gp_prior *p, const double *theta, double *grad);

/* Fits the hyperparameters in place (the first start is the GP's current hyperparameters when
 * from_current is set, otherwise data-driven defaults); the others are drawn from r. Leaves the GP
 * updated at the best optimum. Returns 0, or -1 with err_set (also for restarts < 0, maxeval < 1 or a bad
 * prior); *log_post gets the log posterior. */
int gp_fit(gp *g, const gp_fit_options *o, rng *r, int from_current, double *log_post);

#endif
