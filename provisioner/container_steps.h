// The steps that make, update and remove one container, each journaled
// through one StepJournal: create (base image, clone), finish (configure
// the tree, write host files, start), destroy, and the payload.
#pragma once

#include "provisioner/context.h"
#include "provisioner/layout.h"
#include "provisioner/step_journal.h"

namespace farmhand::provisioner {

class ContainerSteps {
 public:
  ContainerSteps(ProvisionerContext& ctx, StepJournal& journal) : ctx_(ctx), journal_(journal) {}

  // A new container: its record (creating), base image, clone, then finish().
  Status create(const ContainerLayout& layout);
  // The steps create and update share; the record ends ready.
  Status finish(const ContainerLayout& layout);
  // Stops it, removes its host files and root filesystem, and forgets it.
  Status destroy(const ContainerRecord& record);
  // Its payload (PayloadApplier), with its progress in the payload status;
  // true if anything changed.
  Result<bool> payload(const ContainerLayout& layout);

 private:
  Status configure_tree(const ContainerLayout& layout);
  Status write_host_files(const ContainerLayout& layout);
  Status start_if_wanted(const ContainerLayout& layout);
  Status configure_host_interface(const ContainerLayout& layout);
  Status record(const ContainerLayout& layout, Phase phase);

  ProvisionerContext& ctx_;
  StepJournal& journal_;
};

// Adds the build user to `groups` in the tree's /etc/group, creating a
// missing group as a system group (common/etc_files). Membership is what the
// kernel checks when the user opens a node; /etc/gshadow is left alone.
Status add_build_user_to_groups(const fs::path& tree, const std::vector<std::string>& groups);

}  // namespace farmhand::provisioner
